"""The SGLang command lines ``fathom serve`` builds, and its small parsers (no process started)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from fathom.errors import ConfigError
from fathom.serving import procs
from fathom.serving.manager import parse_metrics
from fathom.serving.spec import build_spec


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_search_argv_keeps_radix_cache_and_cuda_graphs_and_reports_cache():
    argv = build_spec("search", model_path=None, port=None).worker_argv("py", host="127.0.0.1", port=8902)
    assert argv[:3] == ["py", "-m", "sglang.launch_server"]
    assert flag(argv, "--model-path") == "FractalAIResearch/Fathom-Search-4B"
    assert flag(argv, "--served-model-name") == "Fathom-Search-4B"
    assert flag(argv, "--port") == "8902" and flag(argv, "--host") == "127.0.0.1"
    assert flag(argv, "--context-length") == "40960"
    assert "--enable-metrics" in argv and "--enable-cache-report" in argv
    assert not any(a.startswith(("--disable-radix-cache", "--disable-cuda-graph")) for a in argv)
    assert "--json-model-override-args" not in argv and "--api-key" not in argv


@pytest.mark.parametrize("context, factor", [(None, 2.0), (122880, 3.0), (163840, 4.0)])
def test_synth_yarn_is_nested_and_covers_the_context(context, factor):
    spec = build_spec("synth", model_path=None, port=None, context_length=context)
    argv = spec.worker_argv("py", host="127.0.0.1", port=8903)
    rope = json.loads(flag(argv, "--json-model-override-args"))
    assert set(rope) == {"rope_scaling"}
    scaling = rope["rope_scaling"]
    assert scaling["rope_type"] == "yarn" and scaling["factor"] == factor
    assert scaling["factor"] * scaling["original_max_position_embeddings"] == int(flag(argv, "--context-length"))
    assert flag(argv, "--served-model-name") == "Fathom-Synthesizer-4B"


def test_query_needs_a_model_and_is_named_after_it():
    with pytest.raises(ConfigError, match="no default model"):
        build_spec("query", model_path=None, port=None)
    spec = build_spec("query", model_path="Qwen/Qwen3-4B", port=None, mem_fraction_static=0.8,
                      extra_args=("--reasoning-parser", "qwen3"))
    argv = spec.worker_argv("py", host="127.0.0.1", port=spec.port)
    assert spec.port == 8905 and flag(argv, "--served-model-name") == "Qwen3-4B"
    assert flag(argv, "--context-length") == "32768" and flag(argv, "--mem-fraction-static") == "0.8"
    assert argv[-2:] == ["--reasoning-parser", "qwen3"]


def test_gpus_are_split_evenly_over_replicas():
    spec = build_spec("search", model_path=None, port=None, gpus=("0", "1", "2", "3"), replicas=2)
    assert spec.tp == 2 and spec.worker_gpus() == [("0", "1"), ("2", "3")]
    with pytest.raises(ConfigError, match="evenly"):
        build_spec("search", model_path=None, port=None, gpus=("0", "1", "2"), replicas=2)
    with pytest.raises(ConfigError, match="--tp"):
        build_spec("search", model_path=None, port=None, gpus=("0", "1"), tp=1)


def test_prometheus_text_is_parsed():
    text = (
        "# HELP sglang:num_running_reqs x\n"
        'sglang:num_running_reqs{model_name="m",tp_rank="0"} 3.0\n'
        'sglang:num_running_reqs{model_name="m",tp_rank="1"} 1.0\n'
        "sglang:num_queue_reqs 2\n"
        'sglang:cache_hit_rate{model_name="m"} 0.5\n'
        "sglang:other 9\n"
    )
    assert parse_metrics(text) == {
        "sglang:num_running_reqs": [3.0, 1.0], "sglang:num_queue_reqs": [2.0], "sglang:cache_hit_rate": [0.5]}


def test_a_reused_pid_is_not_ours_and_is_not_signalled():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        real = procs.start_time(sleeper.pid)
        assert real is not None and procs.is_ours(sleeper.pid, real)
        assert not procs.stop_group(sleeper.pid, str(int(real) + 1), grace_s=1)  # another start time
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert procs.start_time(sleeper.pid) is None and not procs.is_ours(sleeper.pid, real)


def test_our_process_group_is_stopped():
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    try:
        assert procs.stop_group(leader.pid, procs.start_time(leader.pid), grace_s=5)
        assert leader.poll() is not None
        assert procs._only_zombies(leader.pid)  # the sleeps too (left for init to reap)
    finally:
        if leader.poll() is None:
            os.killpg(leader.pid, 9)
            leader.wait()


def test_servers_get_their_own_gpus_when_the_host_has_enough() -> None:
    from fathom.serving.spec import place_gpus

    placed, share = place_gpus(["search", "synth"], {}, per_server=1, visible=["0", "1", "2"])
    assert placed == {"search": ("0",), "synth": ("1",)} and share is None
    unknown, share = place_gpus(["search", "synth", "query"], {}, per_server=1, visible=None)
    assert unknown == {"search": ("0",), "synth": ("1",), "query": ("2",)} and share is None
    restricted, _ = place_gpus(["search", "synth"], {}, per_server=1, visible=["2", "5"])
    assert restricted == {"search": ("2",), "synth": ("5",)}  # CUDA_VISIBLE_DEVICES=2,5 is honoured


def test_on_a_one_gpu_host_servers_share_it_and_split_its_memory() -> None:
    from fathom.serving.spec import place_gpus

    placed, share = place_gpus(["search", "synth"], {}, per_server=1, visible=["0"])
    assert placed == {"search": ("0",), "synth": ("0",)} and share == 0.4
    placed, share = place_gpus(["search", "synth", "query"], {"query": ("0",)}, per_server=1, visible=["0"])
    assert set(placed.values()) == {("0",)} and share == 0.27
    with pytest.raises(ConfigError, match="needs 2 GPUs"):
        place_gpus(["search"], {}, per_server=2, visible=["0"])
