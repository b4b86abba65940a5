"""The two-kernel bench: its figures on synthetic numbers, real kernel processes planning against a real local
OpenAI-compatible server (no model), its cleanup, and (slow) one real shared-mode run on the embedded model."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_servers import FakeOpenAI

from hgpt_magic.bench.__main__ import build_parser
from hgpt_magic.bench.__main__ import main as bench_main
from hgpt_magic.bench.kernels import (
    compare,
    figures,
    process_memory_mib,
    readable,
    stop_server,
    summarise_mode,
)

REPO = Path(__file__).resolve().parents[1]


def plan_reply(request: dict) -> str:
    """A valid one-task plan for each of the bench's requests (what a good controller LLM would answer)."""
    text = request["messages"][-1]["content"]
    named = re.search(r"[\w-]+\.(jpg|png|wav)", text)
    if named and named.group(1) == "wav":
        task = {"task": "automatic-speech-recognition", "args": {"audio": named.group(0)}}
    elif named:
        task = {"task": "image-to-text", "args": {"image": named.group(0)}}
    else:
        task = {"task": "text-to-speech", "args": {"text": "Where is the station?"}}
    time.sleep(0.02)
    return json.dumps({"tasks": [task]})


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_parser_defaults_and_modes():
    args = build_parser().parse_args(["kernels"])
    assert (args.plans, args.modes, args.threads, args.llm, args.out) == (6, ["in-process", "shared"], None, "local", None)
    args = build_parser().parse_args(["kernels", "--modes", "shared, shared", "--plans", "2", "--threads", "1"])
    assert (args.modes, args.plans, args.threads) == (["shared"], 2, 1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["kernels", "--modes", "in-process,sharde"])


def synthetic(mode: str, memory: dict, alone: list[float], together: list[list[float]], server_pid=None) -> dict:
    ready = [{"load_s": 3.0, "server_pid": server_pid}, {"load_s": 0.2 if server_pid else 3.5, "server_pid": server_pid}]
    loaded = {name: (m[0] - 100, m[1]) if m else None for name, m in memory.items()}
    return summarise_mode(
        mode, ready, loaded, memory, {"seconds": alone, "errors": [], "server_pid": server_pid},
        [{"seconds": s, "errors": [], "server_pid": server_pid} for s in together], 12.0,
    )


def test_mode_figures_ratios_and_table_on_synthetic_numbers():
    inproc = synthetic("in-process", {"kernel 1": (1450.0, "pss"), "kernel 2": (1450.0, "pss")},
                       [4.0, 5.0, 6.0], [[9.0, 10.0, 30.0], [11.0, 12.0, 13.0]])
    assert inproc["memory_mib"] == 2900.0 and inproc["memory_mib_loaded"] == 2700.0 and inproc["memory_kind"] == "pss"
    assert (inproc["alone_s_median"], inproc["alone_s_worst"]) == (5.0, 6.0)
    assert (inproc["together_s_median"], inproc["together_s_worst"]) == (11.5, 30.0)
    assert inproc["together_over_alone_median"] == 2.3 and inproc["together_over_alone_worst"] == 6.0
    assert (inproc["plans_alone"], inproc["plans_together"], inproc["plans_failed"], inproc["servers"]) == (3, 6, 0, 0)

    shared = synthetic("shared", {"kernel 1": (150.0, "pss"), "kernel 2": (150.0, "pss"), "server": (1300.0, "pss")},
                       [4.0, 5.0, 6.0], [[6.0, 7.0, 8.0], [6.5, 7.5, 9.0]], server_pid=4242)
    assert shared["memory_mib"] == 1600.0 and shared["load_s"] == [3.0, 0.2] and shared["servers"] == 1
    versus = compare({"in-process": inproc, "shared": shared})
    assert versus["memory_mib"] == pytest.approx(1600 / 2900)
    assert versus["together_s_median"] == pytest.approx(7.25 / 11.5)
    assert compare({"shared": shared}) is None

    result = figures(6, None, {"in-process": inproc, "shared": shared})
    assert result["bench"] == "kernels" and result["in_process"] is inproc and result["shared"] is shared
    text = readable(result)
    assert "memory when warm, kernels + server, MiB (PSS)" in text and "shared/in-process" in text
    memory_row = next(line for line in text.splitlines() if line.startswith("memory after"))
    assert memory_row.split()[-3:] == ["2900.0", "1600.0", "0.552"]
    load_row = next(line for line in text.splitlines() if line.startswith("load, kernel 2"))
    assert load_row.split()[-3:] == ["3.500", "0.200", "-"]  # a per-kernel figure has no ratio


def test_a_process_gone_or_measured_by_rss_shows_in_the_figures():
    missing = synthetic("in-process", {"kernel 1": (10.0, "pss"), "kernel 2": None}, [1.0], [[1.0], [1.0]])
    assert missing["memory_mib"] is None and missing["memory_mib_by_process"]["kernel 2"] is None
    assert missing["memory_mib_loaded"] is None  # a partial sum would flatter
    mixed = synthetic("in-process", {"kernel 1": (10.0, "pss"), "kernel 2": (20.0, "rss")}, [1.0], [[1.0], [1.0]])
    assert mixed["memory_mib"] == 30.0 and mixed["memory_kind"] == "pss+rss"
    assert "(PSS+RSS)" in readable(figures(1, 2, {"in-process": mixed}))


def test_memory_of_a_live_process_and_of_a_gone_one():
    mib, kind = process_memory_mib(os.getpid())
    assert 5 < mib < 100_000 and kind == ("pss" if Path("/proc/self/smaps_rollup").exists() else "rss")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert process_memory_mib(proc.pid) is None


def test_two_kernel_processes_plan_alone_then_together_and_stop(tmp_path, capsys):
    with FakeOpenAI([plan_reply] * 20) as server:
        code = bench_main(["kernels", "--modes", "in-process", "--plans", "2", "--llm", f"{server.base_url}#tiny",
                           "--out", str(tmp_path / "kernels.json")])
        requests = len(server.seen("POST", "/v1/chat/completions"))
    assert code == 0
    assert requests == 2 + 2 + 2 * 2  # a warm-up plan each, 2 alone, 2 each together
    line, table_text = capsys.readouterr().out.split("\n", 1)
    shown = json.loads(line)["in_process"]
    assert (shown["plans_alone"], shown["plans_together"], shown["plans_failed"]) == (2, 4, 0)
    assert shown["memory_mib"] > 10 and shown["memory_mib_loaded"] > 10 and shown["alone_s_median"] >= 0.02
    assert "plan, both together, median s" in table_text and "shared/in-process" not in table_text
    saved = json.loads((tmp_path / "kernels.json").read_text())
    details = saved["details"]["in-process"]
    assert len(details["alone"]["seconds"]) == 2 and [len(t["seconds"]) for t in details["together"]] == [2, 2]
    assert all(gone(k["pid"]) for k in details["kernels"])  # both kernels stopped


def test_a_kernel_that_fails_to_build_its_llm_is_reported(capsys):
    code = bench_main(["kernels", "--modes", "in-process", "--plans", "1", "--llm", "nonsense:spec"])
    assert code == 1
    err = capsys.readouterr().err
    assert "exited with status 1" in err and "unknown LLM spec" in err  # the kernel's own words


def test_shared_mode_needs_the_embedded_model(capsys):
    assert bench_main(["kernels", "--modes", "shared", "--llm", "http://127.0.0.1:9/v1#m"]) == 1
    assert "cannot be shared" in capsys.readouterr().err


def test_kernels_die_with_a_bench_killed_hard(tmp_path):
    with FakeOpenAI([plan_reply] * 5) as server:
        code = ("import sys, time\nfrom pathlib import Path\nfrom hgpt_magic.bench.kernels import Kernel, kernel_env\n"
                f"k = Kernel({server.base_url + '#tiny'!r}, kernel_env('in-process', None), Path({str(tmp_path)!r}) / 'k.log')\n"
                "k.answer(120)\nprint(k.pid, flush=True)\ntime.sleep(120)\n")
        bench = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        pid = int(bench.stdout.readline())
        bench.send_signal(signal.SIGKILL)  # no cleanup code runs: only PR_SET_PDEATHSIG can stop the kernel
        bench.wait()
        assert gone(pid)


def test_stop_server_stops_our_server_and_removes_only_its_discovery_file(tmp_path):
    file = tmp_path / "llm-server.json"
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    file.write_text(json.dumps({"pid": ours.pid, "started": time.time()}))
    stop_server(file, ours.pid)
    assert ours.wait(timeout=5) == -signal.SIGTERM and not file.exists()

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        file.write_text(json.dumps({"pid": other.pid}))  # a newer server replaced ours: not ours to remove
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        stop_server(file, dead.pid)
        assert file.exists() and other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.slow
def test_a_real_shared_run_measures_one_server_and_stops_it(tmp_path):
    from hgpt_magic.llm.local import ensure_gguf

    gguf = ensure_gguf(progress=False)
    env = {**os.environ, "HGPT_CACHE": str(tmp_path / "cache"), "HGPT_GGUF": str(gguf), "PYTHONPATH": str(REPO)}
    out = tmp_path / "kernels.json"
    proc = subprocess.run([sys.executable, "-m", "hgpt_magic.bench", "kernels", "--modes", "shared", "--plans", "1",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shared = json.loads(proc.stdout.splitlines()[0])["shared"]
    assert shared["servers"] == 1 and shared["plans_together"] == 2 and shared["memory_kind"] == "pss"
    assert shared["memory_mib_by_process"]["server"] > 500  # the model lives in the server ...
    assert all(shared["memory_mib_by_process"][k] < 500 for k in ("kernel 1", "kernel 2"))  # ... not the kernels
    server_pid = json.loads(out.read_text())["details"]["shared"]["kernels"][0]["server_pid"]
    assert gone(server_pid) and not (tmp_path / "cache" / "llm-server.json").exists()
