"""Scale: the Ray Data engine against the in-process one, and memory against pool size.

    .venv/bin/python benchmarks/bench_scale_embed.py --frames 1024 --small 10000 --large 100000

(a) ``throughput``: EfficientNet-Lite0 (192x320, batch 32) embedding the same synthetic
    320x192 JPEG frames in this process (2 threads, what ``scenesift embed`` runs) and on a
    local Ray with 2 model actors (``--engine ray``: decode tasks, 1 thread per actor,
    Parquet staging, registration), each with the torch and the ONNX Runtime forward
    (``--runtimes``); the cache is emptied before each run, the rounds are interleaved,
    so other load hits all alike, and the ratios are to in-process torch.
(b) ``rss``: peak RSS (VmHWM) on pools of ``--small`` and ``--large`` 64x64 JPEG frames,
    each in a fresh process, for both engines, of (1) ``embed`` alone (the engine: decode,
    forward, shards, gathering the output array) and (2) ``scenesift tagger predict``
    (embed every frame + the head + scores into the store). The tagger is the ``tiny``
    backbone at 64x64 with a random head: the work is that of a trained one. For Ray,
    the number is the driver's (actors are bounded by their batches).
(c) ``runtimes``: Lite0's pooled forward (batch 32) in eager PyTorch (BN folded,
    channels_last: what ``embed`` runs), ``torch.compile`` and ONNX Runtime (if
    ``onnxruntime`` and ``onnx`` import), at 1 and 2 threads, interleaved.

Prints markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from scenesift.features import embed
from scenesift.features.memory import keep_freed_memory
from scenesift.models import get_backbone
from scenesift.models.backbones import Preprocessing
from scenesift.records import FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from bench_embed import make_project  # the synthetic 320x192 world

SMALL_SIZE = 64
FRAMES_PER_DRIVE = 100


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def empty_cache(store: Store) -> None:
    with store.transaction() as c:
        c.execute("DELETE FROM features")
        c.execute("DELETE FROM arrays")


# --------------------------------------------------------------------------- (a) throughput
ENGINES = {
    "local": "in-process (2 threads, decode in the main process)",
    "ray": "Ray Data, 2 actors x 1 thread + decode tasks",
}


def throughput(work: Path, frames: int, repeats: int, batch_size: int, runtimes: list[str]):
    import ray

    store = make_project(work / "throughput", frames)
    backbone = get_backbone("efficientnet_lite0")
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    configs = [(engine, runtime) for runtime in runtimes for engine in ENGINES]
    rates: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
    for _ in range(repeats):
        for engine, runtime in configs:
            empty_cache(store)
            t0 = time.perf_counter()
            result = embed(store, backbone, batch_size=batch_size, progress=False,
                           engine=engine, ray_workers=2, runtime=runtime)  # fmt: skip
            assert result.computed == frames
            rates[engine, runtime].append(frames / (time.perf_counter() - t0))
    ray.shutdown()
    store.close()
    base = rates["local", "torch"]
    print(f"\n(a) EfficientNet-Lite0 192x320, {frames} frames of 320x192 JPEG, batch "
          f"{batch_size}, best of {repeats} interleaved rounds; Ray started once before "
          f"({ray_start:.1f} s, not counted; each Ray run includes starting its actors); "
          f"{load()} at the end\n")  # fmt: skip
    print("| engine | runtime | frames/s (best) | all rounds | / in-process torch (per round) |")
    print("| --- | --- | ---: | --- | --- |")
    for (engine, runtime), r in rates.items():
        ratios = [a / b for a, b in zip(r, base, strict=True)]
        print(f"| {ENGINES[engine]} | {runtime} | {max(r):.1f} | "
              f"{', '.join(f'{x:.1f}' for x in r)} | **{max(r) / max(base):.2f}** "
              f"({', '.join(f'{x:.2f}' for x in ratios)}) |")  # fmt: skip


# --------------------------------------------------------------------------- (b) memory
def small_pool(work: Path, small: int, large: int) -> dict[int, Path]:
    """``large`` 64x64 JPEGs (noise + shapes), and a project of the first ``small`` and one
    of all of them, each with a tagger checkpoint (tiny backbone, random head)."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    frames = []
    for i in range(large):
        drive = f"d{i // FRAMES_PER_DRIVE:05d}"
        path = work / "images" / drive / f"{i % FRAMES_PER_DRIVE:03d}.jpg"
        if i % FRAMES_PER_DRIVE == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        px = rng.integers(0, 256, (SMALL_SIZE, SMALL_SIZE, 3), dtype=np.uint8)
        im = Image.fromarray(px)
        x, y = (int(v) for v in rng.integers(0, SMALL_SIZE - 16, 2))
        ImageDraw.Draw(im).rectangle((x, y, x + 16, y + 12), fill=(int(x) * 3, 80, 200))
        im.save(path, quality=85)
        frames.append(FrameRecord(name=f"{drive}/{path.name}", path=path, drive=drive,
                                  width=SMALL_SIZE, height=SMALL_SIZE,
                                  timestamp=float(i % FRAMES_PER_DRIVE)))  # fmt: skip
    made = time.perf_counter() - started
    projects = {}
    for n in (small, large):
        store = Store.init(work / f"pool-{n}")
        store.ingest(ImportBatch(frames[:n], work / "images", ImportReport("bench", n)))
        save_random_tagger(store)
        store.close()
        projects[n] = work / f"pool-{n}"
    ingested = time.perf_counter() - started - made
    print(f"\n(b) wrote {large} {SMALL_SIZE}x{SMALL_SIZE} JPEGs in {made:.0f} s "
          f"({large / made:.0f}/s) and ingested them in {ingested:.0f} s")  # fmt: skip
    return projects


def save_random_tagger(store: Store) -> None:
    from scenesift.models.tagger import SituationTagger, TaggerConfig
    from scenesift.models.tagger_net import TaggerNet
    from scenesift.pipelines import tagger as pipe

    config = TaggerConfig(backbone="tiny", input_size=(SMALL_SIZE, SMALL_SIZE), schedule="frozen")
    tagger = SituationTagger(store.taxonomy.names, config)
    pre = Preprocessing(size=(SMALL_SIZE, SMALL_SIZE))
    tagger.net = TaggerNet(get_backbone("tiny", preprocessing=pre), len(tagger.situations))
    tagger.net = tagger.net.to(memory_format=torch.channels_last).eval()
    pipe.save(store, tagger)


def child(mode: str, project: str, engine: str) -> None:
    """In this fresh process, ``embed`` (as the CLI would) or run `scenesift tagger
    predict`; print the peak RSS as JSON."""
    from scenesift.cli import app

    if mode == "embed":
        keep_freed_memory()
        store = Store.open(project)
        backbone = get_backbone("tiny", preprocessing=Preprocessing(size=(SMALL_SIZE,) * 2))
    base = vm("VmRSS")
    started = time.perf_counter()
    if mode == "embed":
        result = embed(store, backbone, progress=False, engine=engine)
        assert result.computed == store.count_frames()
    else:
        app(["tagger", "predict", "-p", project, "--engine", engine], standalone_mode=False)
    seconds = time.perf_counter() - started
    print("RESULT " + json.dumps({"hwm": vm("VmHWM"), "base": base, "seconds": seconds}))


def vm(field: str) -> float:
    """A /proc/self/status memory field in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


MODES = {"embed": "`embed` (the engine)", "predict": "`scenesift tagger predict`"}


def rss(work: Path, small: int, large: int, engines: list[str]) -> None:
    projects = small_pool(work, small, large)
    rows = []
    for mode in MODES:
        for engine in engines:
            for n, project in projects.items():
                with Store.open(project) as store:  # everything computed: nothing cached
                    empty_cache(store)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(project), engine],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if out.returncode:
                    sys.exit(f"child failed ({mode}, {engine}, {n}):\n{out.stdout[-2000:]}"
                             f"{out.stderr[-4000:]}")  # fmt: skip
                result = json.loads(out.stdout.rsplit("RESULT ", 1)[1])
                rows.append((mode, engine, n, result))
                print(f"  {mode} {engine} {n}: {result} ({load()})", flush=True)
    print(f"\n(b) peak RSS (VmHWM of the process; for Ray the driver), tiny backbone at "
          f"{SMALL_SIZE}x{SMALL_SIZE}, every frame computed, each run in a fresh process; "
          f"{load()} at the end\n")  # fmt: skip
    print("| what | engine | frames | seconds | frames/s | RSS before (MiB) | peak RSS (MiB) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    peaks = {}
    for mode, engine, n, r in rows:
        peaks[mode, engine, n] = r["hwm"]
        print(f"| {MODES[mode]} | {engine} | {n:,} | {r['seconds']:.1f} | "
              f"{n / r['seconds']:.0f} | {r['base']:.0f} | {r['hwm']:.0f} |")  # fmt: skip
    for mode in MODES:
        for engine in engines:
            ratio = peaks[mode, engine, large] / peaks[mode, engine, small]
            print(f"| **{MODES[mode]}, peak {large:,} / {small:,}** | {engine} | | | | | "
                  f"**{ratio:.2f}** (target <= 1.5) |")  # fmt: skip


# --------------------------------------------------------------------------- (c) runtimes
def runtimes(repeats: int, batch_size: int, compile_: bool) -> None:
    class Pooled(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x).mean(dim=(2, 3))

    model = Pooled(get_backbone("efficientnet_lite0").for_inference()).eval()
    x = torch.randn(batch_size, 3, 192, 320).contiguous(memory_format=torch.channels_last)
    runners: dict[str, object] = {"eager (BN folded, channels_last)": model}
    notes = []
    if compile_:
        started = time.perf_counter()
        compiled = torch.compile(model)
        with torch.inference_mode():
            compiled(x)
        runners["torch.compile (inductor)"] = compiled
        notes.append(f"torch.compile took {time.perf_counter() - started:.0f} s to compile")
    try:
        import onnxruntime as ort

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "n"}}, opset_version=17)  # fmt: skip
        sessions = {}
        for threads in (1, 2):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sessions[threads] = ort.InferenceSession(
                buf.getvalue(), opts, providers=["CPUExecutionProvider"]
            )
        xn = x.contiguous().numpy()
        with torch.inference_mode():
            diff = np.abs(sessions[1].run(None, {"x": xn})[0] - model(x).numpy()).max()
        notes.append(f"ONNX Runtime {ort.__version__}: max |difference| to eager {diff:.1e}")
    except ImportError as e:
        sessions = {}
        notes.append(f"ONNX Runtime not measured ({e})")

    def rate(fn) -> float:
        started = time.perf_counter()
        fn()
        return batch_size / (time.perf_counter() - started)

    rates: dict[tuple[str, int], list[float]] = {}
    with torch.inference_mode():
        for m in runners.values():
            m(x)  # oneDNN builds its kernels on the first call
        for _ in range(repeats):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for name, m in runners.items():
                    rates.setdefault((name, threads), []).append(rate(lambda m=m: m(x)))
                if sessions:
                    s = sessions[threads]
                    rates.setdefault(("ONNX Runtime (CPU)", threads), []).append(
                        rate(lambda s=s: s.run(None, {"x": xn}))
                    )
    print(f"\n(c) EfficientNet-Lite0 pooled forward, batch {batch_size} at 192x320, best of "
          f"{repeats} interleaved rounds; {'; '.join(notes)}; {load()} at the end\n")  # fmt: skip
    print("| runtime | 1 thread (frames/s) | 2 threads (frames/s) | vs eager, 1 / 2 threads |")
    print("| --- | ---: | ---: | ---: |")
    eager = next(iter(runners))
    names = dict.fromkeys(name for name, _ in rates)
    for name in names:
        one, two = max(rates[name, 1]), max(rates[name, 2])
        e1, e2 = max(rates[eager, 1]), max(rates[eager, 2])
        print(f"| {name} | {one:.1f} | {two:.1f} | {one / e1:.2f} / {two / e2:.2f} |")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1024, help="(a) frames embedded per run")
    ap.add_argument("--repeats", type=int, default=2, help="(a), (c) interleaved rounds")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--small", type=int, default=10_000, help="(b) the small pool")
    ap.add_argument("--large", type=int, default=100_000, help="(b) the large pool")
    ap.add_argument("--engines", default="local,ray", help="(b) engines, comma-separated")
    ap.add_argument("--runtimes", default="torch,onnx", help="(a) forward runtimes")
    ap.add_argument("--sections", default="throughput,rss,runtimes")
    ap.add_argument("--no-compile", action="store_true", help="(c) skip torch.compile")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: temporary)")
    args = ap.parse_args()
    keep_freed_memory()  # as the CLI does
    sections = args.sections.split(",")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"torch {torch.__version__}; {load()} at the start")  # fmt: skip
    try:
        if "throughput" in sections:
            throughput(work, args.frames, args.repeats, args.batch_size,
                       args.runtimes.split(","))  # fmt: skip
        if "rss" in sections:
            rss(work, args.small, args.large, args.engines.split(","))
        if "runtimes" in sections:
            runtimes(max(args.repeats, 3), args.batch_size, not args.no_compile)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
