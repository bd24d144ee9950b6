"""The operating-system sandbox and the plain-data wire, without nbgrader (fast).

Each test starts a real :class:`~course_pkg.grading.sandbox.SandboxedKernel` under bubblewrap
(which ``make test`` installs) and checks one wall of it from the outside: what the kernel can
see and reach, what it may use, and that nothing of it outlives :meth:`close`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from course_pkg.grading.sandbox import (
    PACKAGE_DEST,
    KernelStopped,
    Limits,
    SandboxedKernel,
    bwrap_path,
    editable_hooks,
)
from course_pkg.grading.untrusted import (
    UnsafeFile,
    clean_markdown,
    clean_outputs,
    one_line,
    read_regular,
)
from course_pkg.grading.withheld import build, sandbox_source, withheld_names
from course_pkg.sandbox import wire

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(cell_timeout=5, wall_seconds=60, memory_bytes=1 * 2**30, disk_bytes=8 * 2**20,
                max_reply_bytes=2**20)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The sandbox's course_pkg for ps3 (the matrix form withheld)."""
    return build(tmp_path_factory.mktemp("package"),
                 withheld_names(["course_pkg.checks.matrix_form"]))


@pytest.fixture
def kernel(package):
    with SandboxedKernel(package, {"ps3.ipynb": b"{}"}, LIMITS) as k:
        yield k


def run(kernel: SandboxedKernel, code: str) -> str:
    """Everything a cell printed or raised, as one string."""
    reply = kernel.execute(code)
    parts = []
    for output in reply["outputs"]:
        parts.append(output.get("text") or output.get("data", {}).get("text/plain") or
                     f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def test_bubblewrap_is_available_here():
    assert Path(bwrap_path()).exists()


def test_the_kernel_sees_only_its_scratch_folder_and_the_python_environment(kernel):
    assert run(kernel, "import os; print(os.getcwd(), sorted(os.listdir('.')))") == (
        "/home/student ['.ipython', 'ps3.ipynb']\n")
    assert "FileNotFoundError" in run(kernel, f"open({str(ROOT / 'README.md')!r})")
    assert "FileNotFoundError" in run(kernel, f"os.listdir({str(ROOT / 'assignments')!r})")
    assert "FileNotFoundError" in run(kernel, "os.listdir('/root/.ssh')")
    assert run(kernel, "print(os.listdir('/home'))") == "['student']\n"


def test_the_kernel_has_its_own_user_no_environment_and_no_other_process(kernel):
    os.environ["COURSE_TEST_SECRET"] = "do-not-leak"
    out = run(kernel, "import os; print(os.getuid(), sorted(os.listdir('/proc'))[:3], "
                      "'COURSE_TEST_SECRET' in os.environ, os.environ.get('HOME'))")
    uid, *_ = out.split()
    assert uid == "1000" and "False" in out and "/home/student" in out
    pids = run(kernel, "print([p for p in os.listdir('/proc') if p.isdigit()])")
    assert pids.strip() in ("['1', '2']", "['2', '1']"), pids


def test_the_kernel_has_no_network(kernel):
    out = run(kernel, "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), 1)\n"
                      "except OSError as err:\n    print('refused', type(err).__name__)\n"
                      "print(socket.if_nameindex())")
    assert "refused" in out and "eth" not in out and "ens" not in out


def test_the_python_environment_is_read_only_and_autodiff_is_hidden(kernel):
    site = next(p for p in sys.path if p.endswith("site-packages"))
    out = run(kernel, f"open({site + '/evil.pth'!r}, 'w')")
    assert "OSError" in out or "PermissionError" in out, out
    assert not Path(site, "evil.pth").exists()
    assert "AttributeError" in run(kernel, "import torch; torch.tensor")


def test_the_answers_are_withheld_and_the_helpers_are_not(kernel):
    assert "WithheldError" in run(kernel, "import numpy as np, course_pkg as cp\n"
                                  "net = cp.Network([2, 2], 'sigmoid', 'squared_error')\n"
                                  "net.loss_and_gradients(np.ones((1, 2)), np.ones((1, 2)))")
    for call in ("cp.back_propagate", "cp.network.descend", "net.train_step",
                 "cp.finite_difference_gradients", "cp.gradient_check"):
        assert "WithheldError" in run(kernel, f"{call}()"), call
    assert "WithheldError" in run(kernel, "cp.train(net, np.ones((4, 2)), np.ones((4, 2)), 0.1)")
    routes = {  # every other way to a derivative that course_pkg has
        "graph": "from course_pkg.graph import Graph\nGraph(inputs=['x'], nodes={'o': "
                 "'sigmoid'}, edges={('x', 'o'): 0.5}, outputs=['o']).gradient([1.0], [1.0])",
        "node_delta": "from course_pkg import node_delta\n"
                      "node_delta.update([np.ones((1, 1))], np.ones(1), np.ones(1), 0.1)",
        "finite differences": "from course_pkg.gradcheck import central_differences\n"
                              "central_differences(lambda v: float(v @ v), np.ones(2))",
        "workspace": "from course_pkg.workspace import ArrayOps\nArrayOps(np).error_below("
                     "np.ones((2, 2)), np.ones((2, 1)), None, np.ones((2, 1)), None, 1)",
        "loss gradient": "cp.losses.half_squared_error_grad(np.ones(2), np.zeros(2), np)",
        "seed 001": "from course_pkg import tanh_two_layer as t\n"
                    "t.gradients(np.ones((2, 2)), np.ones((1, 2)), np.ones(2), np.ones(1))",
    }
    for route, code in routes.items():
        assert "WithheldError" in run(kernel, code), route
    assert "ModuleNotFoundError" in run(kernel, "import course_pkg.widgets")
    shell = run(kernel, "from course_pkg.checks.matrix_form import check_gradients\n"
                        "import course_pkg.checks.matrix_form as m\n"
                        "print(check_gradients(None), sorted(n for n in dir(m) if n[0] != '_'))")
    assert shell.startswith("None [") and "'check_gradients'" in shell, shell
    assert "MISTAKES" not in shell and "Exercise" not in shell, shell
    others = run(kernel, "import course_pkg.checks.matrix_form as m\n"
                         "for name in sorted(n for n in dir(m) if n[0] != '_'):\n"
                         "    try:\n        value = getattr(m, name)(None)\n"
                         "    except Exception as err:\n        value = type(err).__name__\n"
                         "    print(name, value)")
    for line in others.splitlines():  # a check does nothing; anything else is withheld
        name, value = line.split(" ", 1)
        assert value == ("None" if name.startswith("check_") else "WithheldError"), line
    assert "ImportError" in run(kernel, "from course_pkg.checks.feedback import MISTAKES")
    assert "ModuleNotFoundError" in run(kernel, "import course_pkg.grading.pipeline")
    assert run(kernel, "from course_pkg.helpers import softmax; print(softmax(np.zeros((2, 1)))"
                       ".ravel())") == "[0.5 0.5]\n"
    assert run(kernel, "print(cp.load_digits_split()[0].shape[1])") == "64\n"


def test_the_kernel_imports_no_hook_of_the_instructors_checkout(kernel):
    """An editable install's hook (``pip install -e``) is hidden in the sandbox: no finder for
    the instructor's checkout is imported, and course_pkg is the withheld copy."""
    for hook in editable_hooks():
        assert run(kernel, f"try:\n    print(repr(open({hook!r}).read()))\n"
                           "except OSError:\n    print('unreadable')") in ("''\n", "unreadable\n")
    assert run(kernel, "import sys, course_pkg\n"
                       "print([m for m in sys.modules if m.startswith('__editable__')])\n"
                       "print(course_pkg.__file__)") == (
        f"[]\n{PACKAGE_DEST}/course_pkg/__init__.py\n")


def test_disk_memory_and_time_are_limited(kernel):
    assert "OSError" in run(kernel, "open('/tmp/big', 'wb').write(b'x' * 20 * 2**20)")
    assert "MemoryError" in run(kernel, "hog = bytearray(3 * 2**30)")
    started = time.monotonic()
    assert "KeyboardInterrupt" in run(kernel, "while True:\n    pass")
    assert time.monotonic() - started < LIMITS.cell_timeout + 3
    assert run(kernel, "print('still alive')") == "still alive\n"


def test_the_sandbox_cpu_time_is_read_from_outside(kernel):
    before = kernel.cpu_seconds()
    run(kernel, "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end:"
                "\n    pass")
    run(kernel, "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import time\\n"
                "end = time.process_time() + 0.5\\nwhile time.process_time() < end: pass'])")
    used = kernel.cpu_seconds() - before
    assert 0.9 < used < 3.0, used  # its own work and its child's, however busy the machine


def test_a_cell_that_ignores_the_interrupt_stops_the_whole_sandbox(package):
    with SandboxedKernel(package, {}, Limits(cell_timeout=1, wall_seconds=60)) as kernel:
        with pytest.raises(KernelStopped, match="ignored the interrupt"):
            kernel.execute("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                           "while True:\n    pass")
        with pytest.raises(KernelStopped):
            kernel.execute("print(1)")


def test_nothing_outlives_the_sandbox(package):
    marker = f"course-sandbox-daemon-{os.getpid()}"
    with SandboxedKernel(package, {}, LIMITS) as kernel:
        out = run(kernel, "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
                          f"'import time; time.sleep(600)', {marker!r}], "
                          "start_new_session=True)\nprint('started')")
        assert out == "started\n", out
        alive = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        assert marker in alive
    time.sleep(0.5)
    alive = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert marker not in alive


def test_a_reply_that_is_too_large_or_malformed_stops_the_kernel(package):
    with SandboxedKernel(package, {}, LIMITS) as kernel:
        with pytest.raises(KernelStopped, match="over the limit"):
            kernel.execute("print('x' * 4 * 2**20)")
    with SandboxedKernel(package, {}, LIMITS) as kernel:
        with pytest.raises(KernelStopped, match="not JSON"):
            kernel.execute("import os, struct, sys\n"
                           "os.write(int(sys.argv[2]), struct.pack('>Q', 5) + b'{{{{{')\n"
                           "import time; time.sleep(1)")


def test_calls_carry_plain_data_only(kernel):
    run(kernel, "import numpy as np\ndef f(a, b, c):\n    print('hello')\n"
                "    return {1: a * 2, 'k': (b, c(np.zeros(1)))}\n"
                "class Liar:\n    def __array__(self, *a, **k):\n        raise SystemExit\n"
                "def g():\n    return Liar()")
    from course_pkg.helpers import sigmoid

    reply = kernel.request({"op": "call", "name": "f", "args": wire.encode(
        [np.arange(3.0), [1, "x"], sigmoid]), "kwargs": wire.encode({}), "timeout": 5}, 10)
    value = wire.decode(reply["value"])
    assert reply["printed"] == "hello\n"
    assert np.array_equal(value[1], [0.0, 2.0, 4.0]) and value["k"][0] == [1, "x"]
    assert np.allclose(value["k"][1], 0.5)
    bad = kernel.request({"op": "call", "name": "g", "args": [], "kwargs": wire.encode({}),
                          "timeout": 5}, 10)
    assert bad["ok"] is False and "expected numbers" in bad["evalue"]


@pytest.mark.parametrize("frame", [
    {"__array__": ["object", [1], "AA==", False]},
    {"__array__": ["float64", [2], "AAAA", False]},
    {"__array__": ["float64", [-1], "", False]},
    {"__pickle__": "gASVAAAA"},
    {"__tuple__": 3},
    {"a": 1, "b": 2},
    {"__dict__": [[[1], 2]]},
])
def test_decode_refuses_what_is_not_plain_data(frame):
    with pytest.raises(wire.WireError):
        wire.decode(frame)


def test_numpy_dict_keys_travel_as_plain_keys():
    sent = wire.encode({np.int64(1): np.arange(2.0), np.str_("b"): 3})
    assert wire.decode(sent).keys() == {1, "b"}


def test_decode_bounds_nesting():
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(wire.WireError, match="nested"):
        wire.decode(deep)


def test_hostile_files_are_never_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    (tmp_path / "link.ipynb").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo.ipynb")
    (tmp_path / "big.ipynb").write_bytes(b"x" * 2000)
    for name, why in (("link.ipynb", "link"), ("fifo.ipynb", "not a regular file"),
                      ("big.ipynb", "over the limit")):
        with pytest.raises(UnsafeFile, match=why):
            read_regular(tmp_path / name, 1000)


def test_outputs_are_cleaned_before_any_page_shows_them():
    outputs, cut = clean_outputs([
        {"output_type": "display_data", "data": {"text/html": "<script>alert(1)</script>",
                                                 "application/javascript": "alert(1)",
                                                 "image/png": "bm90IGEgcG5n"}},
        {"output_type": "stream", "name": "stdout", "text": "y" * 500},
        {"output_type": "weird"}, "not even a dict",
    ], max_chars=100)
    assert all("script" not in str(o) and "alert" not in str(o) for o in outputs)
    assert cut and len(outputs[0]["text"]) < 200
    assert clean_markdown("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)>"
    assert clean_markdown("[x](javascript:f()) ![t](http://h/x.png)") == (
        "&#91;x](javascript:f()) !&#91;t](http&#58;//h/x.png)")
    assert one_line("alice: 5/5\nbob: 5/5\x1b[2K") == "alice: 5/5 bob: 5/5?[2K"


def test_instructor_cells_lose_only_their_imports_of_the_checks():
    source = ("import numpy as np\nfrom course_pkg.checks.matrix_form import check_gradients\n"
              "from course_pkg.helpers import softmax")
    assert sandbox_source(source) == "import numpy as np\nfrom course_pkg.helpers import softmax"


# -- the runtime under the student's code (issue 14 items 3, 5, 6, 8, 9) -----------------------
CHILDREN_REAPED_UNSEEN = """\
import os, signal, subprocess, sys, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps them: nobody waits for them
burn = ("import sys, time\\nend = time.process_time() + 0.6\\n"
        "while time.process_time() < end: pass\\nopen(sys.argv[1], 'w').close()")
for n in range(2):
    subprocess.Popen([sys.executable, "-c", burn, f"/tmp/done-{n}"])
while not all(os.path.exists(f"/tmp/done-{n}") for n in range(2)):
    time.sleep(0.05)
time.sleep(0.2)
"""


@pytest.mark.parametrize("group", ["control group", "no control group"])
def test_cpu_of_children_reaped_unseen_is_counted(package, monkeypatch, group):
    from course_pkg.grading import cgroup

    if group == "no control group":
        monkeypatch.setattr(cgroup, "create", lambda *args, **kwargs: None)
    with SandboxedKernel(package, {}, Limits(cell_timeout=60, memory_bytes=2**30)) as kernel:
        if group == "control group" and kernel.cgroup is None:
            pytest.skip("no control group can be made here (not root, or none writable)")
        assert ("counted by the control group" in kernel.accounting) == (
            group == "control group"), kernel.accounting
        before = kernel.cpu_seconds()
        assert run(kernel, CHILDREN_REAPED_UNSEEN) == ""
        used = kernel.cpu_seconds() - before
    assert used >= 1.0, (group, used)  # 2 x 0.6 s; the live process tree alone saw ~0


def test_every_writable_file_system_of_the_sandbox_is_sized(kernel):
    fill = ("def fill(path):\n    n = 0\n    try:\n        with open(path, 'wb') as f:\n"
            "            for _ in range(40):\n                f.write(b'x' * 2**20)\n"
            "                f.flush()\n                n += 1\n    except OSError as err:\n"
            "        return n, err.errno\n    return n, 0\n"
            "for target in ['/fill.bin', '/opt/fill.bin', '/dev/fill.bin', '/dev/shm/fill.bin',"
            " '/tmp/fill.bin', 'fill.bin']:\n"
            "    print(target, *fill(target))")
    written = {line.split()[0]: tuple(map(int, line.split()[1:]))
               for line in run(kernel, fill).splitlines()}
    for target in ("/fill.bin", "/opt/fill.bin", "/dev/fill.bin"):
        assert written[target] == (0, 30), (target, written)  # EROFS: read-only
    assert written["/dev/shm/fill.bin"][1] == 28 and written["/dev/shm/fill.bin"][0] <= 16
    for target in ("/tmp/fill.bin", "fill.bin"):  # LIMITS.disk_bytes is 8 MiB; ENOSPC
        assert written[target][1] == 28 and written[target][0] <= 8, (target, written)
    assert run(kernel, "print(open('/dev/null', 'w').write('still usable'))").endswith("12\n")


def test_two_sandboxes_alive_at_once_run_as_two_users(package):
    import psutil

    if os.geteuid() != 0:
        pytest.skip("only a grader running as root gives each sandbox a user id of its own")
    with SandboxedKernel(package, {}, LIMITS) as first, \
            SandboxedKernel(package, {}, LIMITS) as second:
        uids = [psutil.Process(k.process.pid).uids().real for k in (first, second)]
        assert uids == [first.identity.uid, second.identity.uid] and uids[0] != uids[1]
        assert run(first, "print('alive')") == run(second, "print('alive')") == "alive\n"


def test_runtime_state_refuses_links_and_what_another_user_owns(tmp_path, monkeypatch):
    from course_pkg.grading import identity

    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(identity.UnsafeRuntimeState, match="not a folder of its own"):
        identity.open_private_dir(tmp_path / "link")
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o777)
    with pytest.raises(identity.UnsafeRuntimeState, match="others may write"):
        identity.open_private_dir(tmp_path / "open")
    if os.geteuid() == 0:
        (tmp_path / "theirs").mkdir(mode=0o700)
        os.chown(tmp_path / "theirs", 23_999, 23_999)
        with pytest.raises(identity.UnsafeRuntimeState, match="belongs to user id 23999"):
            identity.open_private_dir(tmp_path / "theirs")
        (tmp_path / "mine" / "sandbox-uids").mkdir(parents=True, mode=0o700)
        links = [tmp_path / "mine" / "sandbox-uids" / f"{n}.lock" for n in range(
            identity.SPREAD)]  # wherever a claim starts
        for link in links:
            link.symlink_to(target)
        with pytest.raises(identity.UnsafeRuntimeState, match=r"lock file \d+.lock"):
            identity.SandboxIdentity.claim(tmp_path / "mine")
        assert target.read_text() == "keep"
        for link in links:
            link.unlink()
        held = [identity.SandboxIdentity.claim(tmp_path / "mine") for _ in range(300)]
        uids = {one.uid for one in held}
        assert len(uids) == 300 and all(
            identity.ROOT_UID_BASE <= uid < identity.ROOT_UID_BASE + identity.MAX_SANDBOXES
            for uid in uids)
        for one in held:
            one.release()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "open"))  # not this user's alone
    assert not str(identity.runtime_dir()).startswith(str(tmp_path / "open"))
    (tmp_path / "xdg").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert identity.runtime_dir() == tmp_path / "xdg" / "course-grading"


def test_a_call_runs_with_the_kernels_older_objects_frozen(kernel):
    """The grader times calls in the sandbox by its CPU time: a full garbage collection of the
    notebook's objects, set off by whatever the call allocates, is not the call's cost. The
    kernel's objects are frozen while a call runs, and only then."""
    run(kernel, "import gc\ndef frozen():\n    return gc.get_freeze_count()")
    reply = kernel.request({"op": "call", "name": "frozen", "args": [],
                            "kwargs": wire.encode({}), "timeout": 5}, 10)
    assert reply["ok"] and wire.decode(reply["value"]) > 10_000
    assert run(kernel, "print(gc.get_freeze_count())").strip() == "0"
