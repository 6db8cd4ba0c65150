"""One hostile behaviour per test: each is contained and ends with a status that says why.

Every test also checks on the host that nothing of the run is left running.
"""

from __future__ import annotations

import os
import secrets
import socket

import pytest

from sandbox import Limits

FAST = Limits(timeout_s=2.0, memory_mb=256)
pytestmark = pytest.mark.usefixtures("no_leaks")


def test_infinite_loop_times_out(pool):
    r = pool.run("while True:\n    pass", "", Limits(timeout_s=1.0))
    assert (r.status, r.passed) == ("timeout", False)


def test_sleeping_forever_times_out(pool):
    r = pool.run("import time\ntime.sleep(60)", "", Limits(timeout_s=1.0))
    assert r.status == "timeout"


def test_bounded_fork_bomb_hits_the_process_limit(pool):
    r = pool.run("import os\nwhile True:\n    os.fork()", "", FAST)
    assert r.status == "process-limit", r


def test_forked_sleepers_hit_the_process_limit(pool):
    program = "import os, time\nfor _ in range(200):\n    if os.fork() == 0:\n        time.sleep(60)"
    assert pool.run(program, "", FAST).status == "process-limit"


def test_thread_bomb_hits_the_process_limit(pool):
    program = "import threading, time\nfor _ in range(10_000):\n    threading.Thread(target=time.sleep, args=(60,)).start()"
    assert pool.run(program, "", FAST).status == "process-limit"


def test_memory_hog_hits_the_memory_limit(pool):
    assert pool.run("x = bytearray(2 * 1024**3)", "", FAST).status == "memory"


def test_growing_memory_hits_the_memory_limit(pool):
    r = pool.run("x = []\nwhile True:\n    x.append(bytearray(2**24))", "", FAST)
    assert r.status == "memory", r


def test_memory_spread_over_processes_hits_the_memory_limit(pool):
    program = ("import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n        x = bytearray(100 * 2**20)\n"
               "        for i in range(0, len(x), 4096):\n            x[i] = 1\n        time.sleep(60)\ntime.sleep(60)")
    r = pool.run(program, "", Limits(timeout_s=10, memory_mb=256))  # each child alone is under 256 MiB
    assert r.status == "memory", r


def test_huge_output_hits_the_output_limit(pool):
    r = pool.run("while True:\n    print('x' * 10_000)", "", FAST)
    assert r.status == "output-limit"
    assert len(r.stdout) <= FAST.tail_bytes


def test_disk_fill_with_one_file_hits_the_file_size_limit(pool):
    program = "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 2**20)"
    assert pool.run(program, "", FAST).status == "file-limit"


def test_disk_fill_with_many_files_hits_the_disk_limit(pool):
    program = "i = 0\nwhile True:\n    open(f'f{i}', 'wb').write(b'x' * 2**23)\n    i += 1"
    assert pool.run(program, "", FAST).status == "file-limit"


def test_writes_to_tmp_land_in_the_fresh_work_dir_not_on_the_host(pool):
    path = f"/tmp/rlvr-escape-{secrets.token_hex(4)}"
    r = pool.run(f"import os\nopen({path!r}, 'w').write('x')\nprint(os.getcwd())", "", FAST)
    assert r.passed and r.stdout == "/tmp\n"  # the sandbox's /tmp is its own tmpfs
    assert not os.path.exists(path)


@pytest.mark.parametrize("target", ["{repo}/rlvr-escape-{t}", "/root/rlvr-escape-{t}",
                                    "/dev/shm/rlvr-escape-{t}", "/var/tmp/rlvr-escape-{t}"])
def test_writes_outside_the_work_dir_are_refused(pool, target):
    path = target.format(t=secrets.token_hex(4), repo=os.getcwd())
    r = pool.run(f"open({path!r}, 'w').write('escaped')", "", FAST)
    if path.startswith("/tmp/"):  # a checkout under /tmp is hidden by the sandbox's own fresh /tmp: no such dir
        assert r.status == "error" and "FileNotFoundError" in (r.detail + r.stderr), r
    else:
        assert r.status == "forbidden", r
    assert not os.path.exists(path)


def test_the_work_dir_is_fresh_and_writable(pool):
    first = pool.run("open('note', 'w').write('hi')", "assert open('note').read() == 'hi'", FAST)
    second = pool.run("import os\nprint(sorted(os.listdir('.')))", "", FAST)
    assert first.passed and second.stdout.strip() == "[]"


def test_reading_protected_host_files_is_refused(pool):
    assert pool.run("open('/etc/shadow').read()", "", FAST).status == "forbidden"


def test_home_dirs_are_hidden(pool, tmp_path):
    secret = f"rlvr-secret-{secrets.token_hex(8)}"
    path = f"/root/rlvr-secret-{secrets.token_hex(4)}"
    with open(path, "w") as f:
        f.write(secret)
    os.chmod(path, 0o644)  # readable by anyone on the host: only the mount hides it
    try:
        r = pool.run(f"print(open({path!r}).read())", "", FAST)
    finally:
        os.remove(path)
    assert not r.passed and secret not in r.stdout


def test_environment_secrets_do_not_reach_the_program(pool, monkeypatch):
    secret = f"rlvr-secret-{secrets.token_hex(8)}"
    monkeypatch.setenv("RLVR_TEST_SECRET", secret)
    from sandbox import SandboxPool

    with SandboxPool(workers=1) as fresh:  # started after the secret was set
        r = fresh.run("import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ').read())\n"
                      "print(open('/proc/1/environ').read())", "", FAST)
    assert r.status == "forbidden" and "/proc/1/environ" in r.detail  # init's memory is not the program's
    assert r.stdout and secret not in r.stdout + r.stderr
    assert "RLVR_TEST_SECRET" not in r.stdout


def test_loopback_connection_to_the_host_is_refused_and_nothing_arrives(pool):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        r = pool.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)", "", FAST)
        assert r.status == "network", r
        with pytest.raises(BlockingIOError):
            server.accept()


@pytest.mark.parametrize("folder", ["/run", "/dev/shm"])
def test_host_unix_sockets_are_out_of_reach(pool, folder):
    path = f"{folder}/rlvr-{secrets.token_hex(4)}.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        os.chmod(path, 0o777)  # anyone on the host may connect: only the sandbox's mounts hide it
        server.listen()
        server.setblocking(False)
        try:
            r = pool.run(f"import socket\nsocket.socket(socket.AF_UNIX).connect({path!r})", "", FAST)
            with pytest.raises(BlockingIOError):
                server.accept()
        finally:
            os.remove(path)
    assert not r.passed and "FileNotFoundError" in r.detail, r


def test_outside_address_is_refused_at_once(pool):
    program = "import socket\ns = socket.socket()\ns.settimeout(30)\ns.connect(('1.1.1.1', 80))"
    r = pool.run(program, "", FAST)
    assert r.status == "network", r  # refused, not a timeout: there is no route at all


def test_udp_to_an_outside_address_is_refused(pool):
    program = "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))"
    assert pool.run(program, "", FAST).status == "network"


def test_dns_lookup_fails(pool):
    assert pool.run("import socket\nsocket.getaddrinfo('example.com', 80)", "", FAST).status == "network"


def test_background_process_does_not_outlive_the_run(pool, tmp_path):
    program = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(0.5)\n"
               "    open('/tmp/late', 'w').write('x')\n    time.sleep(60)\n")
    r = pool.run(program, "", FAST)
    assert r.passed  # the program itself ended; its child is killed with the run (no_leaks checks)


def test_killing_the_parent_and_its_process_group_only_kills_the_program(pool):
    program = ("import os, signal, time\nif os.fork() == 0:\n    time.sleep(60)\n"
               "os.kill(os.getppid(), signal.SIGKILL)\nos.killpg(0, signal.SIGKILL)")
    r = pool.run(program, "", FAST)
    assert (r.status, r.detail) == ("killed", "SIGKILL")  # the parent (init) is immune; the group dies
    assert pool.run("x = 1", "assert x == 1", FAST).passed  # the workers are unharmed


def test_a_terminating_signal_to_itself_ends_the_program(pool):
    r = pool.run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(5)", "", FAST)
    assert (r.status, r.detail, r.signal) == ("killed", "SIGTERM", 15)


def test_kill_everything_reaches_nothing_outside(pool):
    r = pool.run("import os, signal\nos.kill(-1, signal.SIGKILL)", "", FAST)
    assert not r.passed and pool.run("pass", "", FAST).passed


@pytest.mark.parametrize("program", [
    "import sys\nsys.exit(0)",
    "import os\nos._exit(0)",
    "raise SystemExit(0)",
    "import atexit, os\natexit.register(lambda: os._exit(0))\nraise SystemExit(0)",
    "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)",
])
def test_exiting_before_the_tests_is_not_a_pass(pool, program):
    r = pool.run(program, "assert False, 'the tests ran'", FAST)
    assert r.status in ("exited", "killed") and not r.passed, r


def test_system_exit_inside_the_tests_is_not_a_pass(pool):
    r = pool.run("def f():\n    raise SystemExit(0)", "f()\nassert False", FAST)
    assert r.status == "exited" and not r.passed


def test_patched_builtins_do_not_skip_the_tests(pool):
    program = ("import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.compile = lambda *a, **k: None\n"
               "builtins.AssertionError = type('Nope', (Exception,), {})\n")
    r = pool.run(program, "assert 1 == 2", FAST)
    assert r.status == "failed" and not r.passed


def test_replacing_os_exit_and_os_write_does_not_break_the_harness(pool):
    program = "import os\nos._exit = lambda code: None\nos.write = None"
    assert pool.run(program, "assert True", FAST).passed
    assert pool.run(program, "assert False", FAST).status == "failed"


def test_printing_a_fake_pass_on_every_fd_is_not_a_pass(pool):
    program = ("import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'pass 0123456789abcdef\\n')\n"
               "    except OSError:\n        pass\nos._exit(0)")
    assert pool.run(program, "assert False", FAST).status == "exited"


def test_ctypes_segfault_is_killed(pool):
    r = pool.run("import ctypes\nctypes.string_at(0)", "", FAST)
    assert (r.status, r.detail) == ("killed", "SIGSEGV")


def test_ctypes_exit_before_the_tests_is_not_a_pass(pool):
    assert pool.run("import ctypes\nctypes.CDLL(None)._exit(0)", "assert False", FAST).status == "exited"


def test_ctypes_cannot_regain_privileges(pool):
    program = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
               "assert libc.setuid(0) != 0\n"
               "assert libc.mount(b'none', b'/', None, 32 | 4096, None) != 0\n"  # MS_REMOUNT | MS_BIND, rw
               "assert libc.unshare(0x10000000 | 0x20000) != 0 or libc.mount(b'none', b'/', None, 32, None) != 0\n"
               "open('/usr/rlvr-escape', 'w')")
    r = pool.run(program, "", FAST)
    assert r.status == "forbidden", r
    assert not os.path.exists("/usr/rlvr-escape")


def test_the_program_runs_unprivileged_in_its_own_namespaces(pool):
    program = "import os\nprint(os.getuid(), os.getgid(), os.getpid(), sorted(p for p in os.listdir('/proc') if p.isdigit()))"
    r = pool.run(program, "", FAST)
    uid, gid, pid, *_ = r.stdout.split()
    assert (uid, gid, pid) == ("1000", "1000", "2")  # PID 1 is the sandbox's init
