"""The sandboxed child: run as `python -I -c <this file's text> <config json>` with the model's code on stdin.

Self-contained on purpose (stdlib only, no import from infra: `-I` puts neither the script's directory nor
PYTHONPATH on sys.path). It runs before any model code, in this order:
  1. read the code from stdin (the server closes it), then point fd 0 at /dev/null;
  2. rlimits: address space, CPU seconds, processes (fork bombs), file size, open files, no core dumps;
  3. oom_score_adj 1000 (the kernel's OOM killer takes a child before the tool server), then not dumpable
     (other calls' processes, same uid in the container, cannot read its memory or environ via /proc);
  4. Landlock (kernel >= 5.13, where allowed): read/execute on the system and interpreter paths, every right
     in its own scratch dir only, nothing else writable; TCP bind/connect denied (ABI >= 4); signals and
     abstract unix sockets scoped to its own processes (ABI >= 6);
  5. seccomp (no_new_privs + a BPF filter, arch-checked): socket() fails with EACCES for every family,
     socketpair() only for AF_UNIX, no ptrace/process_vm_*/pidfd_getfd/io_uring/unshare/setns/bpf/
     perf_event_open, no setsid/setpgid (nothing leaves the process group the server kills), no signals to
     the tool server's pid or to every process (-1);
  6. run the code like a notebook cell: the value of a last bare expression is printed.
"""
import ctypes
import json
import os
import resource
import sys

# --------------------------------------------------------------------------- seccomp
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# name: (x86_64 nr, aarch64 nr)
SYSCALLS = {
    "socket": (41, 198), "socketpair": (53, 199), "ptrace": (101, 117), "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271), "pidfd_getfd": (438, 438), "pidfd_send_signal": (424, 424),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "unshare": (272, 97), "setns": (308, 268), "bpf": (321, 280), "perf_event_open": (298, 241),
    "setsid": (112, 157), "setpgid": (109, 154), "tkill": (200, 130),
    "kill": (62, 129), "tgkill": (234, 131), "rt_sigqueueinfo": (129, 138), "rt_tgsigqueueinfo": (297, 240),
    "pidfd_open": (434, 434),
}
DENY = ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "pidfd_send_signal", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "unshare", "setns", "bpf", "perf_event_open", "setsid", "setpgid",
        "tkill")
PID_ARG0 = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open")
EPERM, EACCES, AF_UNIX = 1, 13, 1
RET_ALLOW, RET_ERRNO, RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000
LD_ABS, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
X32_SYSCALL_BIT = 0x40000000


def seccomp_program(machine: str, server_pid: int, server_pgid: int | None = None) -> list[tuple[int, int, int, int]]:
    """The BPF filter as (code, jt, jf, k). Unknown arch: a refusal, never an unfiltered child."""
    arch = AUDIT_ARCH[machine]
    col = 0 if machine == "x86_64" else 1
    nr = {name: nums[col] for name, nums in SYSCALLS.items()}
    prog = [(LD_ABS, 0, 0, 4), (JEQ, 1, 0, arch), (RET, 0, 0, RET_KILL), (LD_ABS, 0, 0, 0)]
    if machine == "x86_64":  # x32 ABI numbers would slip past every rule below
        prog += [(JGE, 0, 1, X32_SYSCALL_BIT), (RET, 0, 0, RET_KILL)]
    for name in DENY:
        prog += [(JEQ, 0, 1, nr[name]), (RET, 0, 0, RET_ERRNO | EPERM)]
    prog += [(JEQ, 0, 1, nr["socket"]), (RET, 0, 0, RET_ERRNO | EACCES)]
    # socketpair: AF_UNIX only (an anonymous pair reaches nothing outside the process tree)
    prog += [(JEQ, 0, 4, nr["socketpair"]), (LD_ABS, 0, 0, 16), (JEQ, 0, 1, AF_UNIX), (RET, 0, 0, RET_ALLOW),
             (RET, 0, 0, RET_ERRNO | EACCES)]
    # the server, its process group (by its pid and its pgid), everyone
    bad = sorted({server_pid & 0xFFFFFFFF, (-server_pid) & 0xFFFFFFFF, (-(server_pgid or server_pid)) & 0xFFFFFFFF,
                  0xFFFFFFFF})
    for name in PID_ARG0:
        n = len(bad)
        prog += [(JEQ, 0, n + 3, nr[name]), (LD_ABS, 0, 0, 16)]
        prog += [(JEQ, n + 1 - j, 0, v) for j, v in enumerate(bad, start=1)]
        prog += [(RET, 0, 0, RET_ALLOW), (RET, 0, 0, RET_ERRNO | EPERM)]
    return prog + [(RET, 0, 0, RET_ALLOW)]


def install_seccomp(libc, server_pid: int, server_pgid: int | None = None) -> None:
    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    prog = seccomp_program(os.uname().machine, server_pid, server_pgid)
    arr = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), arr)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


# --------------------------------------------------------------------------- Landlock
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1
READ_ONLY = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/dev")


def landlock_abi(libc) -> int:
    abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return abi if abi > 0 else 0


def install_landlock(libc, scratch: str, abi: int) -> None:
    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    handled = FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    attr = RulesetAttr(handled, (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
                       (SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL) if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = libc.syscall(444, ctypes.byref(attr), size, 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    reads = list(SYSTEM_READ) + [sys.prefix, sys.base_prefix, sys.exec_prefix,
                                 os.path.dirname(os.path.realpath(sys.executable))] + [p for p in sys.path if p]
    rules = [(p, READ_ONLY) for p in dict.fromkeys(reads)] + [(scratch, handled),
                                                              ("/dev/null", FS_READ_FILE | FS_WRITE_FILE)]
    for path, rights in rules:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        if not os.path.isdir(path):
            rights &= FS_EXECUTE | FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)
        rule = PathBeneath(rights, pfd)
        r = libc.syscall(445, fd, 1, ctypes.byref(rule), 0)  # landlock_add_rule(LANDLOCK_RULE_PATH_BENEATH)
        os.close(pfd)
        if r != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.syscall(446, fd, 0) != 0:  # landlock_restrict_self
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(fd)


# --------------------------------------------------------------------------- the cell
def run_cell(code: str) -> None:
    import ast
    import traceback

    def report(exc: BaseException) -> None:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "<python>":
            tb = tb.tb_next  # hide this bootstrap's frames: the model sees its own code's traceback only
        traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()

    try:
        tree = ast.parse(code, "<python>")
    except SyntaxError as exc:
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        sys.exit(1)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(tree, "<python>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<python>", "eval"), namespace)
            if value is not None:
                print(repr(value))
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the model reads the traceback
        report(exc)
        sys.exit(1)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    code = sys.stdin.buffer.read().decode("utf-8", "replace")
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = ["python"]
    for name, value in (("RLIMIT_AS", cfg["memory_bytes"]), ("RLIMIT_CPU", cfg["cpu_seconds"]),
                        ("RLIMIT_NPROC", cfg["max_procs"]), ("RLIMIT_FSIZE", cfg["max_file_bytes"]),
                        ("RLIMIT_NOFILE", cfg["max_open_files"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    abi = landlock_abi(libc)
    if abi:
        install_landlock(libc, cfg["scratch"], abi)
    elif cfg.get("require_landlock"):
        raise SystemExit("sandbox: Landlock is unavailable and TOOLSERVER_REQUIRE_LANDLOCK is set")
    install_seccomp(libc, cfg["server_pid"], cfg.get("server_pgid"))
    del libc
    run_cell(code)


if __name__ == "__main__":
    main()
