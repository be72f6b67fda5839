"""What a new user trips over first: the version, help without required options, a chip YAML
to start from, a resumed sweep that keeps its settings, and a README that renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from seedchip.cli.main import app

from test_hostile import run_cli

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_version():
    code, out, err = run_cli(["--version"])
    assert code == 0 and out.startswith("seedchip 0."), err


def test_help_needs_no_required_option():
    for argv in (["op", "gemm", "--help"], ["op", "attention", "--help"], ["op", "allreduce", "--help"]):
        code, out, err = run_cli(argv)
        assert code == 0 and "--m" in out or "--batch" in out or "--bytes" in out, (argv, err)
    code, _, err = run_cli(["op", "gemm", "--m", "8", "--n", "8", "--k", "8"])
    assert code == 2 and "--chip" in err


def test_chip_template_round_trip(tmp_path):
    code, text, err = run_cli(["chips", "--template"])
    assert code == 0 and text.count("#") > 20, err
    mine = tmp_path / "mine.yaml"
    mine.write_text(text)
    code, out, err = run_cli(["estimate", "--chip", str(mine), "--model", "llama-3.1-8b", "--json"])
    assert code == 0, err
    assert json.loads(out)["inputs"]["chip"] == "my-chip"
    code, out, err = run_cli(["silicon", "--chip", str(mine), "--json"])
    assert code == 0 and json.loads(out)["chip"] == "my-chip", err


def test_every_option_has_help():
    """Every option of every command says what it is (the --help of each command)."""
    missing = []

    def walk(cmd, path):
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option" and not p.help and not p.hidden:
                missing.append(f"{path} {p.opts[0]}")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")
    walk(typer.main.get_command(app), "seedchip")
    assert not missing, missing


def test_resume_keeps_the_search_settings(tmp_path, tiny_space):
    space = tiny_space
    out = tmp_path / "sweep"
    code, text, err = run_cli(["explore", str(space), "--out", str(out), "--search", "random", "--trials", "3",
                               "--seed", "7", "--no-plot", "--no-progress", "--json"])
    assert code == 0, err
    first = json.loads(text)
    code, text, err = run_cli(["explore", "--resume", str(out), "--no-plot", "--no-progress", "--json"])
    assert code == 0, err
    again = json.loads(text)
    assert again["search"] == "random" and again["num_new"] == 0 and again["num_points"] == first["num_points"] > 0


def test_readme_code_fences_pair_up_and_its_commands_parse():
    text = (ROOT / "README.md").read_text()
    fences = [i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith("```")]
    assert len(fences) % 2 == 0, f"unpaired code fence at lines {fences}"
    assert "--resume runs/asic1" in text and "chips --template" in text


def test_simulate_title_says_how_the_benchmark_ran():
    """A replayed benchmark reads as it was run: the engine, the clients, the length range."""
    code, out, err = run_cli(["simulate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--engine", "trtllm",
                              "--max-concurrency", "16", "--input-len", "512", "--output-len", "64",
                              "--range-ratio", "0.5", "--num-requests", "40"])
    assert code == 0, err
    title = " ".join(out.split("┌")[0].split())
    assert "llama-3.1-8b on 1 x h200-sxm (engine trtllm," in title
    assert "512 in / 64 out at most, each uniform from 0.5 x that; 16 closed-loop clients" in title
    code, out, err = run_cli(["simulate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--replicas", "2",
                              "--qps", "3", "--input-len", "64", "--output-len", "8", "--num-requests", "20"])
    title = " ".join(out.split("┌")[0].split())
    assert code == 0 and "on 2 replicas of 1 x h200-sxm" in title and "64 in / 8 out; 3 req/s" in title, title
    code, out, err = run_cli(["simulate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--qps", "3",
                              "--max-concurrency", "4", "--input-len", "64", "--output-len", "8",
                              "--num-requests", "20"])
    title = " ".join(out.split("┌")[0].split())
    assert code == 0 and "64 in / 8 out; 3 req/s, poisson arrivals, at most 4 in flight" in title, (title, err)
    trace = ROOT.parent / "shared" / "data" / "traces" / "azure_llm_2023_conv.csv"
    code, out, err = run_cli(["simulate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--trace", str(trace),
                              "--max-concurrency", "4", "--num-requests", "30"])
    title = " ".join(out.split("┌")[0].split())
    assert code == 0 and "the trace's arrival times, at most 4 in flight" in title, (title, err)


def test_capacity_title_names_the_chip_and_the_engine():
    code, out, err = run_cli(["capacity", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--replicas", "2",
                              "--input-len", "256", "--output-len", "32", "--slo-ttft-p99", "2s",
                              "--slo-tpot-p99", "100ms", "--num-requests", "300", "--max-requests", "300",
                              "--no-interval"])
    title = " ".join(out.split("┌")[0].split())
    assert code == 0 and "capacity of llama-3.1-8b on 2 replicas of 1 x h200-sxm (engine vllm, 256 in / 32 out)" \
        in title, (title, err)
