"""Hostile input: every bad value of every option of every command exits 2 with one line on
stderr, no traceback, no "internal error", nothing on stdout, in bounded time.

The options are read from the CLI itself (Typer's parameters and their annotations), so a
new option is fuzzed as soon as it exists. Bad values are drawn per kind (Hypothesis): whole
numbers (zero, negative, huge, fractional, text), numbers (zero, negative, NaN, inf, text),
durations (bare numbers, negative, unknown units), names (typos, empty, random text) and
files (missing, a folder, empty, binary, truncated, wrong schema, unknown field). A table of
named cases follows: the ones a user reported, each with the words its line must hold.
"""

from __future__ import annotations

import contextlib
import io
import signal
import tempfile
import typing
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedchip.cli.main import app, main

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "calibration" / "data" / "cpu_smoke.csv"
SPACE = ROOT / "examples" / "explore" / "inference_asic.yaml"
SCENARIO = ROOT / "examples" / "plan" / "two_year_plan.yaml"
GOLDEN_SIM = ROOT / "tests" / "golden" / "sim__h100-sxm__llama-3.1-70b__trtllm_tp4_offline.json"
TIME_LIMIT_S = 30          # a bad input is refused before any work: far less than this

pytestmark = pytest.mark.e2e


class Hang(BaseException):          # not caught by the CLI as an internal error
    pass


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``seedchip ARGV`` in this process, or Hang."""
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise Hang(" ".join(argv))

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIME_LIMIT_S)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, out.getvalue(), err.getvalue()


def assert_refused(argv: list[str], *words: str) -> str:
    code, out, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert code == 2, f"{argv}: exit {code}, stderr {err[-600:]!r}"
    assert len(lines) == 1 and lines[0].startswith("seedchip: error: "), f"{argv}: {err!r}"
    assert "Traceback" not in err and "internal error" not in err, f"{argv}: {err!r}"
    assert out == "", f"{argv}: printed {out[:200]!r} before failing"
    for w in words:
        assert w.lower() in lines[0].lower(), f"{argv}: {lines[0]!r} lacks {w!r}"
    return lines[0]


# --- the files a user can get wrong --------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    (d / "folder").mkdir()
    (d / "empty.yaml").write_text("")
    (d / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    (d / "truncated.yaml").write_text("id: x\nmatrix:\n  peak_flops_per_s: {bf16: 1")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "unknown_field.yaml").write_text("id: x\nnot_a_field: 3\n")
    (d / "bad.csv").write_text("a,b\n1\n")
    return {"missing": d / "nope" / "x.yaml", **{p.stem: p for p in d.iterdir()}}


# --- every command: a quick valid call to break one option of -------------------------------

def bases(tmp: Path) -> dict[str, list[str]]:
    """Each command's valid, quick invocation (the option under test replaces its value)."""
    return {
        "estimate": ["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b"],
        "simulate": ["simulate", "--model", "llama-3.1-8b", "--workload", "chat", "--qps", "2",
                     "--num-requests", "20", "--no-interval"],
        "capacity": ["capacity", "--model", "llama-3.1-8b", "--workload", "chat", "--slo-ttft-p99", "1s",
                     "--num-requests", "100", "--max-requests", "100", "--no-interval"],
        "silicon": ["silicon", "--chip", "seedchip-ref"],
        "engines": ["engines", "--chip", "h200-sxm"],
        "op gemm": ["op", "--chip", "h200-sxm", "gemm", "--m", "64", "--n", "64", "--k", "64"],
        "op attention": ["op", "--chip", "h200-sxm", "attention", "--batch", "1", "--seq-len", "128",
                         "--num-heads", "8"],
        "op allreduce": ["op", "--chip", "h200-sxm", "allreduce", "--bytes", "1024", "--num-chips", "8"],
        "explore": ["explore", str(SPACE), "--out", str(tmp / "sweep"), "--search", "random", "--trials", "1",
                    "--no-plot", "--no-progress"],
        "plan": ["plan", str(SCENARIO)],
        "run": ["run", "--out", str(tmp / "run.json")],
        "calibrate fit": ["calibrate", "fit", str(SMOKE), "--chip", "h200-sxm", "--out", str(tmp / "c.yaml"),
                          "--allow-cpu"],
        "validate kernels": ["validate", "kernels", str(SMOKE), "--chip", "h200-sxm"],
        "report": ["report", str(GOLDEN_SIM), "--out", str(tmp / "r.html")],
    }


def _options() -> list[tuple[str, str, str]]:
    """(command, option, kind) for every option of the commands in ``bases``."""
    root = typer.main.get_command(app)
    out = []
    for name in bases(Path("/tmp")):
        cmd = root
        for part in name.split():
            cmd = cmd.commands[part]
        for p in cmd.params:
            if getattr(p, "is_flag", False) or not p.opts or p.name in ("as_json",):
                continue
            ann = p.type_descriptor.annotation
            args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
            t = args[0]
            opt = p.opts[0]
            if opt in ("--what-if", "--address"):
                kind = "text"
            elif t is int:
                kind = "int"
            elif t is float:
                kind = "float"
            elif t is Path:
                kind = "path"
            elif opt.startswith("--slo-"):
                kind = "duration"
            else:
                kind = "name"
            out.append((name, opt, kind))
    return out


OPTIONS = _options()
# values that are fine for some options (and what they mean)
VALID = {"--seed": {"0"}, "--window": {"0"}}
OUTPUTS = {"--out", "--trace-out", "--cache-dir", "--report"}


def bad_ints(opt: str):
    ok = VALID.get(opt, set())
    return st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=10**15).map(str),
                     st.sampled_from(["1.5", "abc", "", "nan", "1e3", "0x10"])).filter(lambda v: v not in ok)


def bad_floats(opt: str):
    extra = ["1.5", "2"] if "fraction" in opt or "ratio" in opt else []
    return st.one_of(st.floats(max_value=0, allow_nan=False).map(repr),
                     st.sampled_from(["nan", "inf", "-inf", "abc", "", "1e999", *extra]))


def bad_durations():
    return st.one_of(st.integers(min_value=1, max_value=10**6).map(str),     # no unit
                     st.sampled_from(["-1s", "0s", "0ms", "nan s", "inf s", "abc", "", "5 parsecs", "1e999s"]))


def bad_names():
    return st.one_of(st.sampled_from(["", " ", "h200-sxmm", "llama-3.1-8", "vlm", "fp9", "chatt", "poison",
                                      "least", "gird", "murphyy", "prefil", "prefill=2", "x" * 300]),
                     st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.", min_size=1, max_size=12).map(lambda s: s + "~"))


def bad_text():
    return st.sampled_from(["", "=", "hbm_supply", "hbm_supply=", "nonsense=3", "hbm_supply=abc", "chip_slip=-1",
                            "hbm_supply=+50%%", "budget=nan%"])


def bad_paths(files, opt: str):
    if opt in OUTPUTS:
        # places no file or folder can be made: under a file, in /proc
        return st.sampled_from([str(files["empty"]) + "/x", str(files["binary"]) + "/a/b", "/proc/seedchip/x"])
    return st.sampled_from([str(files[k]) for k in ("missing", "folder", "empty", "binary", "truncated", "list",
                                                     "unknown_field", "bad")])


def bad_value(files, opt: str, kind: str):
    return {"int": lambda: bad_ints(opt), "float": lambda: bad_floats(opt), "duration": bad_durations,
            "name": bad_names, "text": bad_text, "path": lambda: bad_paths(files, opt)}[kind]()


def with_option(base: list[str], opt: str, value: str) -> list[str]:
    """``base`` with ``opt`` set to ``value`` (replacing it when present)."""
    out, skip = [], False
    for i, a in enumerate(base):
        if skip:
            skip = False
            continue
        if a == opt:
            skip = True
            continue
        out.append(a)
    return [*out, opt, value]


@st.composite
def hostile_calls(draw, files, tmp):
    name, opt, kind = draw(st.sampled_from(OPTIONS))
    value = draw(bad_value(files, opt, kind))
    return with_option(bases(tmp)[name], opt, value)


def test_every_option_is_fuzzed():
    kinds = {k for _, _, k in OPTIONS}
    assert {"int", "float", "duration", "name", "path"} <= kinds
    assert len(OPTIONS) > 80          # all the options of the commands above


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_every_option_refuses_bad_values(data, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                 # a drawn name may be a valid output file name
    argv = data.draw(hostile_calls(files, tmp_path))
    code, out, err = run_cli(argv)
    if code == 0:
        # a value that turned out valid (a random name that is a path, a huge seed): it must
        # then have produced a result, not half of one
        assert out and not err.strip().startswith("seedchip: error"), argv
        return
    lines = err.strip().splitlines()
    assert code == 2, f"{argv}: exit {code}: {err[-600:]!r}"
    assert len(lines) == 1 and lines[0].startswith("seedchip: error: "), f"{argv}: {err!r}"
    assert "Traceback" not in err and "internal error" not in err


# --- named cases: each class of the reported failures ---------------------------------------

def test_named_cases(files, tmp_path):
    f = {k: str(v) for k, v in files.items()}
    sim = ["simulate", "--model", "llama-3.1-8b", "--workload", "chat", "--qps", "1", "--num-requests", "50"]
    cases = [
        # an unwritable output, checked before the work
        (["run", "--out", "/proc/x.json"], "--out"),
        (["run", "--out", f["missing"]], "does not exist"),
        ([*sim, "--trace-out", f["missing"]], "--trace-out"),
        (["plan", str(SCENARIO), "--out", "/proc/seedchip-plan"], "--out"),
        (["calibrate", "fit", str(SMOKE), "--chip", "h200-sxm", "--out", f["folder"]], "folder"),
        # binary files where text is expected
        (["estimate", "--chip", f["binary"], "--model", "llama-3.1-8b"], "not a text file"),
        ([*sim[:3], "--trace", f["binary"]], "not a text file"),
        (["explore", f["binary"], "--out", str(tmp_path / "x")], "not a text file"),
        (["plan", f["binary"]], "not a text file"),
        # out of range, huge or meaningless numbers
        ([*sim, "--seed", "-1"], "--seed"),
        ([*sim[:-1], "100000000"], "--num-requests"),
        (["silicon", "--chip", "seedchip-ref", "--alpha", "nan"], "--alpha"),
        (["silicon", "--chip", "seedchip-ref", "--alpha", "3"], "negative-binomial"),
        (["silicon", "--chip", "seedchip-ref", "--node", "samsung-sf4"], "did you mean 'samsung-sf4x'"),
        (["explore", str(SPACE), "--out", str(tmp_path / "t0"), "--search", "random", "--trials", "0"], "--trials"),
        (["explore", str(SPACE), "--out", str(tmp_path / "t1"), "--search", "random", "--trials", "-1"], "--trials"),
        (["explore", str(SPACE), "--out", str(tmp_path / "t2"), "--search", "random", "--trials", "1000000000"],
         "--trials"),
        (["explore", str(SPACE), "--out", str(tmp_path / "t3"), "--trials", "5"], "grid"),
        (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--memory-fraction", "nan"], "finite"),
        # longer than the model's context window
        (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--input-len", "200000"], "context window"),
        (["estimate", "--chip", "h200-sxm", "--model", "mistral-7b", "--input-len", "100000"], "context window"),
        # flags that conflict or do nothing
        ([*sim, "--offline"], "--qps"),
        ([*sim, "--replicas", "2", "--disaggregate", "prefill=1xh200-sxm,decode=1xh200-sxm"], "--replicas"),
        ([*sim, "--slo-tpot-p99", "100"], "unit"),
        # a compute format the chip has no hardware for
        (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--act-format", "fp4"], "fp4"),
        # misleading messages, now plain
        (["estimate", "--chip", f["folder"], "--model", "llama-3.1-8b"], "folder"),
        (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--calibration", f["empty"]], "empty"),
        (["calibrate", "fit-tables", f["missing"], "--chip", "h200-sxm", "--out", str(tmp_path / "c.yaml")],
         "measurement folder"),
        (["calibrate", "fit", str(SMOKE), "--chip", "h200-sxm", "--out", str(tmp_path / "c.yaml")], "cpu"),
    ]
    for argv, word in cases:
        assert_refused(argv, word)
    assert not (tmp_path / "c.yaml").exists()
    # a refused sweep leaves no store behind (which would refuse the corrected command as "already a sweep")
    assert not any((tmp_path / t).exists() for t in ("t0", "t1", "t2", "t3"))


def test_a_typo_in_a_chip_file_is_named_with_its_likely_intent(tmp_path):
    src = (ROOT / "src" / "seedchip" / "hardware" / "catalog" / "h200-sxm.yaml").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(src.replace("\ntdp_w:", "\ntdp_wat:"))
    line = assert_refused(["estimate", "--chip", str(typo), "--model", "llama-3.1-8b"], "tdp_wat")
    assert "did you mean 'tdp_w'" in line
    zero = tmp_path / "zero.yaml"
    zero.write_text(src.replace("bf16: 989.4 TFLOP/s", "bf16: 0 TFLOP/s"))
    line = assert_refused(["estimate", "--chip", str(zero), "--model", "llama-3.1-8b"], "bf16")
    assert "> 0" in line and "needs a bf16 entry" not in line


def test_an_existing_sweep_is_not_merged_into(tmp_path):
    out = tmp_path / "sweep"
    code, _, err = run_cli(["explore", str(SPACE), "--out", str(out), "--search", "random", "--trials", "2",
                            "--no-plot", "--no-progress", "--json"])
    assert code == 0, err
    assert_refused(["explore", str(SPACE), "--out", str(out), "--search", "random", "--trials", "2"], "--resume")


def test_accepted_but_questionable_input_says_so():
    """Weight-only fp4 on a chip without fp4 compute is priced, and the result says how."""
    import seedchip
    d = seedchip.estimate(chip="h200-sxm", model="llama-3.1-8b", weight_format="fp4", interval=False).to_dict()
    assert d["inputs"]["act_format"] == "fp8"
    assert any("fp4" in n and "weight-only" in n for n in d["notes"])
    b = seedchip.estimate(chip="b200", model="llama-3.1-8b", weight_format="fp4", interval=False).to_dict()
    assert b["inputs"]["act_format"] == "fp4" and b["notes"] == []


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(p.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killed_sweep_leaves_no_workers(tmp_path):
    """SIGKILL gives a sweep no chance to stop its pool: the workers must notice and end."""
    import subprocess
    import sys
    import time
    proc = subprocess.Popen([sys.executable, "-m", "seedchip.cli.main", "explore", str(SPACE), "--out",
                             str(tmp_path / "sweep"), "--workers", "2", "--no-plot", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.time() + 90, []
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = _children(proc.pid)
        assert len(workers) >= 2, "the sweep did not start its workers"
        time.sleep(3)                            # the workers are evaluating
        proc.kill()
        proc.wait()
        deadline = time.time() + 15
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.5)
        assert not [w for w in workers if _alive(w)], "workers outlived their killed sweep"
    finally:
        if proc.poll() is None:
            proc.kill()


# --- files with one bad value anywhere --------------------------------------------------------

def _leaves(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d[:2]):
            yield from _leaves(v, path + (i,))
    else:
        yield path


FILES = {"scenario": (SCENARIO, lambda f: ["plan", str(f)]),
         "chip": (ROOT / "src" / "seedchip" / "hardware" / "catalog" / "seedchip-ref.yaml",
                  lambda f: ["estimate", "--chip", str(f), "--model", "llama-3.1-8b"]),
         "space": (SPACE, lambda f: ["explore", str(f), "--out", str(f.parent / "sweep"), "--search", "random",
                                     "--trials", "1", "--no-plot", "--no-progress"])}
BAD_LEAVES = [float("nan"), float("inf"), -1, 0, "abc", [], {}, None, 1e308, 10**30]


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_one_bad_value_in_a_file(data, tmp_path, monkeypatch):
    """Any field of a scenario, chip or design-space file set to a bad value: a result (the value was
    valid there) or exit 2 with one line, never a traceback or an internal error."""
    import copy

    import yaml
    monkeypatch.chdir(tmp_path)
    kind = data.draw(st.sampled_from(sorted(FILES)))
    src, argv_of = FILES[kind]
    doc = yaml.safe_load(src.read_text())
    path = data.draw(st.sampled_from(list(_leaves(doc))))
    value = data.draw(st.sampled_from(BAD_LEAVES))
    bad = copy.deepcopy(doc)
    node = bad
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    f = Path(tempfile.mkdtemp(dir=tmp_path)) / f"{kind}.yaml"      # one folder per example
    f.write_text(yaml.safe_dump(bad))
    code, out, err = run_cli(argv_of(f))
    where = f"{kind} {'.'.join(map(str, path))} = {value!r}"
    if code == 0:
        assert out and not err.strip(), where
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("seedchip: error: "), f"{where}: {err[-500:]!r}"


def test_written_results_are_whole_and_readable(tmp_path):
    """An atomic write leaves the file, not its temporary, with the permissions any new file gets."""
    import os

    from seedchip.outputs import write_text
    out = write_text(tmp_path / "r.json", "{}\n")
    assert out.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_emulate_refuses_runaway_and_empty_values(tmp_path):
    pytest.importorskip("torch")
    import json
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}))
    base = ["emulate", "--model", str(d), "--prompt-len", "8", "--max-new-tokens", "2"]
    assert_refused(with_option(base, "--max-new-tokens", str(10**19)), "--max-new-tokens")
    assert_refused(with_option(base, "--prompt-len", str(10**30)), "--prompt-len")
    assert_refused([*base, "--seed", "-1"], "--seed")
    assert_refused([*base, "--format", ""], "--format")
