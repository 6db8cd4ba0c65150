"""Kernel isolation for one sandbox run: namespaces, mounts, privileges, rlimits.

Used by `sandbox.runner` and `sandbox.worker`, in this order:

0. `prepare_worker()` once in a root worker: its own mount namespace, home
   directories hidden (the interpreter's own directories bound back), /run
   hidden and a minimal /dev (no host unix sockets), every mount read-only,
   no supplementary groups; and its own empty network namespace, which its
   runs share one after another (a new one per run costs ~1 ms of kernel CPU).
1. `clone_into_namespaces()` in the worker: a fork whose child starts in new
   user, mount, PID, IPC, UTS and cgroup namespaces (and network, unless the
   worker was prepared), as PID 1; then
   `map_ids()` from the worker maps inside uid/gid 1000 to a fresh host uid
   per run (when root), so process limits and signals are per run.
2. `become_inside_user()` and `setup_filesystem(limits)` in the child: the
   mount tree read-only (recursive `mount_setattr`), a fresh size-limited tmpfs
   on /tmp (the work dir, the only writable place), a /proc of its PID namespace.
3. `drop_privileges()` and `apply_limits(limits)` in the child before user code:
   no capabilities (none in the bounding set either), no new privileges, rlimits
   on CPU, address space, processes, file size, open files.

The network namespace has only a loopback that is down: every connect fails at
once with ENETUNREACH and nothing leaves the machine. Uses only libc through
ctypes (Python 3.11 has no os.unshare); needs Linux >= 5.12 (mount_setattr) and
user namespaces. No cgroups and no seccomp: each process has its own
address-space limit, the process count is bounded, and the runner polls the
memory of the whole process tree.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import sys

from sandbox.base import Limits

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = (
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
AT_RECURSIVE = 0x8000
SYS_CLONE = {"x86_64": 56, "aarch64": 220}
SYS_MOUNT_SETATTR = 442  # same number on every architecture (added in 5.12)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
CAP_LAST = 63  # drop every bit the kernel may know; EINVAL past its last cap is ignored

INSIDE_ID = 1000  # the uid/gid the program sees; not 0, so it is no one special inside either
FIRST_HOST_UID = 1_000_000  # fresh host uids for runs, far above any real account


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


_prepared = False  # prepare_worker() has run in this process


def worker_prepared() -> bool:
    return _prepared


def host_ids_for(pid: int) -> tuple[int, int]:
    """Host uid/gid for the run whose init has host pid `pid`: fresh ones when we are root."""
    if os.geteuid() == 0:
        return FIRST_HOST_UID + pid, FIRST_HOST_UID + pid  # unique among live runs, as pids are
    return os.geteuid(), os.getegid()  # an unprivileged owner may map only its own ids


def clone_into_namespaces() -> int:
    """fork(), but the child starts in new namespaces as PID 1 of its PID namespace.

    A raw clone with no new stack behaves like fork; it saves the extra process
    that unshare(CLONE_NEWPID) would need. Safe here because the worker is
    single-threaded (no lock can be held by another thread). Returns 0 in the child.
    """
    nr = SYS_CLONE.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"no clone syscall number known for {platform.machine()}")
    # A prepared worker already lives in an empty network namespace of its own, which its runs
    # share one after another (never two at once): no per-run netns to build and tear down.
    flags = NAMESPACES & ~CLONE_NEWNET if _prepared else NAMESPACES
    pid = _libc.syscall(nr, ctypes.c_ulong(flags | signal.SIGCHLD), 0, 0, 0, 0)
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"clone(new namespaces): {os.strerror(err)}")
    return pid


def map_ids(pid: int, uid: int, gid: int) -> None:
    """From the parent: map inside uid/gid 1000 of the child's user namespace to uid/gid."""
    _write(f"/proc/{pid}/setgroups", "deny")  # nobody inside may change groups
    _write(f"/proc/{pid}/uid_map", f"{INSIDE_ID} {uid} 1")
    _write(f"/proc/{pid}/gid_map", f"{INSIDE_ID} {gid} 1")


def die_with_parent(isolated: bool) -> None:
    """In init: die when the worker that cloned it dies. Isolated, init is PID 1 of the run's namespace and its
    death takes everything; unsafe, init first kills its process group (the harness and what the program
    forked), itself included. Changing credentials clears this: call it again after `become_inside_user`."""
    if isolated:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        return
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def become_inside_user() -> None:
    """In the child, once mapped: uid/gid 1000 inside, the fresh host ids outside.

    Root inside is not mapped, so this keeps the capabilities in the new user
    namespace that the mounts need; `drop_privileges` removes them later.
    """
    os.setresgid(INSIDE_ID, INSIDE_ID, INSIDE_ID)
    os.setresuid(INSIDE_ID, INSIDE_ID, INSIDE_ID)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                    data.encode() if data else None),
        f"mount {fstype or source} on {target}",
    )


HIDDEN_DIRS = ("/root", "/home")  # home dirs: keys, tokens, caches


def hide_home_dirs(keep: list[str]) -> None:
    """Cover /root and /home with empty tmpfs, re-exposing `keep` (the interpreter's dirs).

    Run once by a root worker in its own mount namespace (it alone can read /root,
    where pyenv puts Python), or per run by a non-root one. Needs mount rights.
    """
    keep_fds: list[tuple[str, int]] = []
    for path in sorted(set(keep)):
        if any(path.startswith(h + "/") for h in HIDDEN_DIRS) and os.path.isdir(path):
            if not any(path.startswith(k + "/") for k, _ in keep_fds):
                keep_fds.append((path, os.open(path, os.O_PATH | os.O_DIRECTORY)))
    for hidden in HIDDEN_DIRS:
        if os.path.isdir(hidden):
            _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    for path, fd in keep_fds:
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        os.close(fd)


def interpreter_dirs() -> list[str]:
    """Where this Python's standard library and packages live (they must stay readable)."""
    paths = [sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             *sys.path]
    return [os.path.realpath(p) for p in paths if p and os.path.isdir(p)]


DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


def prepare_worker() -> None:
    """Once per root worker: a private mount namespace with home dirs hidden, all read-only."""
    global _prepared
    os.setgroups([])  # runs inherit our groups and could not drop root's themselves
    # Its own mount namespace, and an empty network namespace (a loopback that is down)
    # owned by the host's user namespace: nothing inside can bring an interface up.
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare(mount, network namespaces) for the worker")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    hide_home_dirs(interpreter_dirs())
    _minimal_dev()
    if os.path.isdir("/run"):  # host daemons' unix sockets live there: a way out of the network namespace
        _mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755")
    _make_readonly(keep_proc_writable=True)
    _prepared = True


def _minimal_dev() -> None:
    """Replace /dev by a few harmless nodes (no /dev/log socket, no kmsg, no disks)."""
    nodes = [(name, os.open(f"/dev/{name}", os.O_PATH)) for name in DEV_NODES if os.path.exists(f"/dev/{name}")]
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name, fd in nodes:
        os.close(os.open(f"/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o666))  # a mount point for the node
        _mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND, None)
        os.close(fd)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")


def _make_readonly(keep_proc_writable: bool = False) -> None:
    _set_mount_attr("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, AT_RECURSIVE)
    if keep_proc_writable:  # each run writes its /proc/self/uid_map before it mounts its own /proc
        _set_mount_attr("/proc", 0, MOUNT_ATTR_RDONLY, 0)


def _set_mount_attr(path: str, attr_set: int, attr_clr: int, flags: int) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(
        _libc.syscall(SYS_MOUNT_SETATTR, -1, path.encode(), flags, ctypes.byref(attr), ctypes.sizeof(attr)),
        f"mount_setattr({path}, set={attr_set:#x}, clear={attr_clr:#x})",
    )


def setup_filesystem(limits: Limits, worker_prepared: bool) -> None:
    """Read-only host tree, fresh tmpfs on /tmp, private /proc. Needs the new namespaces.

    `worker_prepared`: the worker ran `prepare_worker` (root), so the tree is already
    private, read-only and without home dirs; otherwise that is done here, per run.
    """
    if not worker_prepared:
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)  # nothing we do propagates to the host
        hide_home_dirs(interpreter_dirs())
        _make_readonly()
    # Mounted after the read-only pass, so they stay as asked.
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.disk_mb}m,nr_inodes=16384,mode=0700")
    _mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    _libc.sethostname(b"sandbox", 7)
    os.chdir("/tmp")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return CAP_LAST


LAST_CAP = _last_cap()  # read once, in the worker: the sandbox's /proc may differ


def drop_privileges() -> None:
    """No capabilities in the sandbox's user namespace, now or after any execve."""
    for cap in range(LAST_CAP + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL: past the last capability this kernel knows
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()  # all zero: effective, permitted, inheritable
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def apply_limits(limits: Limits) -> None:
    """rlimits for the program process and everything it starts."""
    mb = 1 << 20
    cpu = int(limits.timeout_s) + 1  # a backstop; the wall timeout normally fires first
    for res, value in (
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, limits.memory_mb * mb),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_FSIZE, limits.file_mb * mb),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
        (resource.RLIMIT_MEMLOCK, 0),
    ):
        # CPU: SIGXCPU at the soft limit (the harness reports it), SIGKILL a second later
        resource.setrlimit(res, (value, value + 1 if res == resource.RLIMIT_CPU else value))
