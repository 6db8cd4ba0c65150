"""Tasks: where samples come from (synthetic, local files, hub datasets). Torch-free."""

from tasks.base import ListTask, Task, get_task, list_tasks, register_task

__all__ = ["ListTask", "Task", "get_task", "list_tasks", "register_task"]
