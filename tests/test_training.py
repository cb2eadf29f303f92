"""The shared training loop with FRTM's recipe: a step lowers nothing magic, but runs, saves, resumes, exports."""
import json

import numpy as np
import pytest
import torch

from napari_vos import weights
from napari_vos.training.frtm_recipe import FRTMRecipe
from napari_vos.training.loop import TrainSettings, train


def _recipe():
    return FRTMRecipe(size=(64, 96), batch_size=1, synthetic_fraction=1.0, train_backbone_from="conv4")


def test_train_saves_resumes_and_exports(tmp_path):
    run = tmp_path / "run"
    settings = TrainSettings(steps=2, log_every=1, save_every=1, seed=0)
    recipe = _recipe()
    model = train(recipe, run, settings, device="cpu", log=lambda s: None)
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["step"] == 2
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and all(np.isfinite(x["loss"]) for x in lines)
    # frozen stages really are frozen, trained stages moved
    fresh = _recipe().build(torch.device("cpu"))
    assert not any(p.requires_grad for p in model.backbone.conv3.parameters())
    moved = any(not torch.equal(a, b) for a, b in zip(model.seg.parameters(), fresh.seg.parameters()))
    assert moved

    messages = []
    train(_recipe(), run, TrainSettings(steps=3, log_every=1, save_every=1), device="cpu", resume=True,
          log=messages.append)
    assert any("resumed frtm" in m and "step 2" in m for m in messages)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3

    tensors, meta = recipe.export_tensors(model)
    assert all(t.dtype == torch.float16 for t in tensors.values() if t.is_floating_point())
    path = tmp_path / "frtm.safetensors"
    weights.save_checkpoint(path, tensors, meta)
    from napari_vos.methods.frtm import FRTM

    method = FRTM.build(device="cpu", checkpoint=str(path))
    assert method.checkpoint_sha256 == weights.sha256_of(path)

    # a new run into the same folder would overwrite this one's state; another method's cannot resume it
    with pytest.raises(ValueError, match="holds an earlier run: pass --resume"):
        train(_recipe(), run, TrainSettings(steps=1), device="cpu", log=lambda s: None)
    other = _recipe()
    other.config = "full"
    with pytest.raises(ValueError, match="is a frtm run \\(config 'fast'\\), not frtm \\(config 'full'\\)"):
        train(other, run, TrainSettings(steps=4), device="cpu", resume=True, log=lambda s: None)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3  # untouched


def test_training_settings_and_inputs_that_cannot_work_are_refused(tmp_path):
    for bad in ({"save_every": 0}, {"log_every": 0}, {"steps": 0}, {"lr_drop_at": 0.0}, {"lr_drop_at": 1.5}):
        with pytest.raises(ValueError, match="must be a whole number >= 1|lr-drop-at"):
            TrainSettings(**bad)
    # --data whose only sequence is a project hold-out one: no real video left to train on
    from PIL import Image

    seq = tmp_path / "JPEGImages" / "480p" / "bear"
    ann = tmp_path / "Annotations" / "480p" / "bear"
    seq.mkdir(parents=True)
    ann.mkdir(parents=True)
    for t in range(4):
        Image.fromarray(np.full((48, 64, 3), 40 * t, np.uint8)).save(seq / f"{t:05d}.jpg")
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 10:30] = 1
        Image.fromarray(mask, mode="L").save(ann / f"{t:05d}.png")
    recipe = _recipe()
    recipe.real_dirs = [str(tmp_path)]
    with pytest.raises(ValueError, match="no usable training sequence .* bear"):
        recipe.batch(np.random.default_rng(0))
    # an --init checkpoint of another method loads nothing into FRTM
    from napari_vos.methods.rgmp_network import RGMPConfig, RGMPNetwork
    from napari_vos.training.rgmp_recipe import RGMPRecipe

    path = tmp_path / "rgmp.safetensors"
    weights.save_checkpoint(path, *RGMPRecipe().export_tensors(RGMPNetwork(RGMPConfig(backbone="resnet18", channels=32))))
    recipe = _recipe()
    recipe.init_checkpoint = str(path)
    with pytest.raises(ValueError, match="for an FRTM 'fast' network"):
        recipe.build(torch.device("cpu"))


def test_batch_has_reference_and_two_validation_frames():
    rng = np.random.default_rng(0)
    clips = _recipe().batch(rng)
    assert len(clips) == 1
    assert clips[0].frames.shape == (3, 64, 96, 3) and clips[0].masks.shape == (3, 64, 96)
    assert clips[0].masks[0].sum() > 0  # the reference frame shows the object


def test_real_16bit_sequences_are_normalised_per_stack_as_the_engine_does(tmp_path):
    """A dim and a bright frame stay dim and bright (per-frame stretching would make them equal)."""
    import tifffile

    from napari_vos.data.frames import FrameSource
    from napari_vos.training.clips import SequenceBank

    seq = tmp_path / "cells"
    (seq / "images").mkdir(parents=True)
    (seq / "masks").mkdir()
    rng = np.random.default_rng(0)
    stack = []
    for t, level in enumerate((1000, 3000, 2000)):
        frame = (level + rng.integers(0, 200, (24, 32))).astype(np.uint16)
        stack.append(frame)
        tifffile.imwrite(seq / "images" / f"{t:05d}.tif", frame)
        mask = np.zeros((24, 32), np.uint8)
        mask[5:15, 5:15] = 1
        tifffile.imwrite(seq / "masks" / f"{t:05d}.tif", mask)
    bank = SequenceBank([seq], size=(24, 32), exclude=())
    frames, _ = bank.videos[0]
    assert frames[1].mean() > frames[0].mean() + 100  # uint8 at training size
    expected = (FrameSource(np.stack(stack))[1] * 255).astype(np.uint8)
    assert np.abs(frames[1].astype(int) - expected.astype(int)).mean() < 2


class _CountingRecipe:
    """A recipe stand-in whose batches say which generator drew them."""

    name = "counting"

    def __init__(self):
        self.loaded = False

    def batch(self, rng):
        self.loaded = True  # what a lazily loaded video bank does on first use
        return torch.tensor(rng.integers(0, 2**31, size=4))


def _draw(recipe, workers, seed, start_step, n):
    from napari_vos.training.prefetch import batch_stream

    stream = batch_stream(recipe, workers, seed, start_step)
    drawn = [tuple(next(stream).tolist()) for _ in range(n)]
    del stream
    return drawn


def test_worker_batches_differ_between_workers_and_after_resume_and_repeat_for_the_same_seed():
    recipe = _CountingRecipe()
    first = _draw(recipe, 2, seed=0, start_step=0, n=6)
    assert recipe.loaded  # warmed up in the parent, before the workers are forked
    assert len(set(first)) == 6  # two workers, two generators: no batch drawn twice
    assert sorted(_draw(_CountingRecipe(), 2, seed=0, start_step=0, n=6)) == sorted(first)
    resumed = _draw(_CountingRecipe(), 2, seed=0, start_step=100, n=6)
    assert not set(resumed) & set(first)


def test_train_with_workers_and_an_export_at_every_save(tmp_path):
    recipe = _recipe()
    exported = []

    def on_save(model, step):
        tensors, meta = recipe.export_tensors(model)
        weights.save_checkpoint(tmp_path / "w.safetensors", tensors, meta)
        exported.append(step)

    train(recipe, tmp_path / "run", TrainSettings(steps=2, log_every=1, save_every=1, workers=1), device="cpu",
          log=lambda s: None, on_save=on_save)
    assert exported == [1, 2]  # each save; the end adds none when its step is saved already
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 2
    assert not list(tmp_path.glob("*.tmp"))
    from napari_vos.methods.frtm import FRTM

    assert FRTM.build(device="cpu", checkpoint=str(tmp_path / "w.safetensors")).checkpoint_sha256 == \
        weights.sha256_of(tmp_path / "w.safetensors")


def test_clip_resize_is_skimage_bilinear_away_from_the_border():
    from skimage.transform import resize

    from napari_vos.training.clips import resize_bilinear

    rng = np.random.default_rng(0)
    for shape, out in (((2, 90, 130, 3), (64, 96)), ((2, 40, 50), (64, 96))):
        x = rng.random(shape).astype(np.float32)
        ours = resize_bilinear(x, out)
        ref = np.stack([resize(v, out, order=1, anti_aliasing=False) for v in x])
        assert ours.shape == ref.shape and ours.dtype == np.float32
        assert np.abs(ours - ref)[:, 2:-2, 2:-2].max() < 1e-4


def test_synthetic_cells_share_draws_normalised_microscopy_videos():
    """synthetic_cells=1: every synthetic video is a cell time-lapse (grey: three equal channels, many cells);
    0 (the default): natural-like colour videos only; out of [0, 1]: a clear error."""
    from napari_vos.training.recipes import make_recipe

    rng = np.random.default_rng(0)
    cells = make_recipe("frtm", size=(64, 96), synthetic_cells=1.0)
    for _ in range(3):
        frames, labels = cells._synthetic(rng)
        assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 96, 3)
        assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 1], frames[..., 2])
        assert frames.max() > 100 and len(np.unique(labels[0])) >= 4  # background + at least 3 cells
    assert len(cells.batch(rng)) == cells.batch_size
    natural = make_recipe("frtm", size=(64, 96))
    assert natural.synthetic_cells == 0.0
    frames, _ = natural._synthetic(rng)
    assert not np.array_equal(frames[..., 0], frames[..., 2])
    with pytest.raises(ValueError, match="synthetic"):
        make_recipe("frtm", size=(64, 96), synthetic_cells=1.5)


def test_bf16_training_steps_in_autocast_with_float32_weights_and_fp16_is_refused(tmp_path, monkeypatch):
    """--precision bf16: the forward pass runs in bfloat16 (the recipe's backbone sees it), the
    closed-form ridge probe still solves in float32, and the weights and gradients stay float32."""
    from napari_vos.training import frtm_recipe

    seen = []
    original = frtm_recipe.ridge_probe_scores

    def spy(ref, *args, **kwargs):
        out = original(ref, *args, **kwargs)
        seen.append((ref.dtype, out.dtype))
        return out

    monkeypatch.setattr(frtm_recipe, "ridge_probe_scores", spy)
    model = train(_recipe(), tmp_path / "run", TrainSettings(steps=2, log_every=1, save_every=2, precision="bf16"),
                  device="cpu", log=lambda s: None)
    assert seen and all(d == (torch.bfloat16, torch.float32) for d in seen)
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["loss"]) and np.isfinite(x["probe_loss"]) for x in lines)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="loss scaling"):
        TrainSettings(precision="fp16")


class _TinyRecipe:
    """A two-weight linear model and random batches: the loop's bookkeeping, in milliseconds."""

    name = "tiny"

    def __init__(self):
        self.draws = []

    def build(self, device):
        torch.manual_seed(0)
        return torch.nn.Linear(2, 1).to(device)

    def batch(self, rng):
        x = rng.normal(size=(4, 2))
        self.draws.append(x)
        return torch.tensor(x, dtype=torch.float32)

    def loss(self, model, batch, device):
        return (model(batch.to(device)) - 1.0).pow(2).mean(), {}


def _logged_lr(run):
    return [round(x["lr"], 8) for x in map(json.loads, (run / "log.jsonl").read_text().splitlines())]


def test_lr_drops_tenfold_at_the_lr_drop_at_fraction_also_when_resumed_right_there(tmp_path):
    # pins: drop step = int(steps * lr_drop_at): steps 1..3 train at lr, the rest at lr / 10 (the lr logged
    # with step k is the one it trained at; until session 32 it was the next step's); a run resumed at
    # exactly the drop step continues at lr / 10
    quiet = lambda s: None  # noqa: E731
    train(_TinyRecipe(), tmp_path / "a", TrainSettings(steps=10, lr=1e-3, lr_drop_at=0.3, log_every=1), log=quiet)
    assert _logged_lr(tmp_path / "a") == [1e-3] * 3 + [1e-4] * 7
    run = tmp_path / "b"
    train(_TinyRecipe(), run, TrainSettings(steps=5, lr=1e-3, lr_drop_at=1.0, log_every=1), log=quiet)
    train(_TinyRecipe(), run, TrainSettings(steps=10, lr=1e-3, lr_drop_at=0.5, log_every=1), resume=True, log=quiet)
    assert _logged_lr(run)[5:] == [1e-4] * 5


def test_resume_restores_the_model_the_optimizer_and_moves_the_batches_on(tmp_path):
    # pins: resume loads the weights and Adam's state from last.pt, and draws new batches from
    # (seed, step), not the first run's again (nor another seed's: seed + step collided until session 32)
    run, quiet = tmp_path / "run", (lambda s: None)
    first = _TinyRecipe()
    trained = train(first, run, TrainSettings(steps=2, lr=0.1, seed=3), log=quiet)
    again = train(_TinyRecipe(), run, TrainSettings(steps=2, lr=0.1, seed=3), resume=True, log=quiet)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), again.state_dict().values()))
    more = _TinyRecipe()
    train(more, run, TrainSettings(steps=3, lr=0.1, seed=3), resume=True, log=quiet)
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["step"] == 3 and int(state["optimizer"]["state"][0]["step"]) == 3
    assert len(more.draws) == 1 and not np.array_equal(more.draws[0], first.draws[0])
    np.testing.assert_array_equal(more.draws[0], np.random.default_rng([3, 2]).normal(size=(4, 2)))


def test_save_every_and_the_time_budget_in_minutes(tmp_path, monkeypatch):
    # pins: last.pt is saved every save_every steps and at the end; max_minutes is minutes on the monotonic clock
    from types import SimpleNamespace

    from napari_vos.training import loop

    saved = []
    train(_TinyRecipe(), tmp_path / "a", TrainSettings(steps=5, save_every=2, log_every=1), log=lambda s: None,
          on_save=lambda model, step: saved.append(step))
    assert saved == [2, 4, 5]
    clock = iter(range(1000))  # every reading of the loop's clock is one second later
    monkeypatch.setattr(loop, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    messages = []
    train(_TinyRecipe(), tmp_path / "b", TrainSettings(steps=50, log_every=100, max_minutes=0.05),
          log=messages.append)  # 3 s: the check after step 4 reads 4 s
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=False)["step"] == 4
    assert any("stopping at step 4: time budget of 0.05 min reached" in m for m in messages)


def _real_sequence(root, name="seq", n_frames=4):
    """One annotated sequence in the DAVIS layout (JPEGImages/NAME, Annotations/NAME)."""
    from PIL import Image

    (root / "JPEGImages" / name).mkdir(parents=True)
    (root / "Annotations" / name).mkdir(parents=True)
    for t in range(n_frames):
        Image.fromarray(np.full((48, 64, 3), 20 * t, np.uint8)).save(root / "JPEGImages" / name / f"{t:05d}.jpg")
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 10 + t:30 + t] = 1
        Image.fromarray(mask, mode="L").save(root / "Annotations" / name / f"{t:05d}.png")


@pytest.mark.parametrize("method", ["frtm", "rgmp", "agame", "osvos_at", "cosnet", "s2s", "rvos"])
def test_a_recipe_pickles_for_spawn_workers_without_its_videos_and_draws_again(tmp_path, method):
    # macOS and Windows start DataLoader workers with spawn, which pickles the recipe: the synthetic
    # sources must pickle (they were closures), and the loaded videos stay behind (each worker loads its own)
    import pickle

    from napari_vos.training.recipes import make_recipe

    _real_sequence(tmp_path, n_frames=12)  # long enough for every recipe's clips (A-GAME's 8)
    recipe = make_recipe(method, size=(64, 96), real_dirs=[str(tmp_path)], synthetic_fraction=0.5, batch_size=2,
                         synthetic_cells=0.5)
    rng = np.random.default_rng(0)
    for _ in range(4):
        recipe.batch(rng)
    assert recipe._bank is not None and sum(map(len, recipe._pools.values())) > 0
    clone = pickle.loads(pickle.dumps(recipe))
    assert clone._bank is None and not any(clone._pools.values())
    assert recipe._bank is not None and sum(map(len, recipe._pools.values())) > 0  # the original keeps its own
    assert set(clone._draws) == set(recipe._draws)
    clone.batch(np.random.default_rng(1))
    assert clone._bank is not None and clone._bank.names == recipe._bank.names == ["seq"]


def test_spawned_workers_draw_batches_and_stop_with_the_stream():
    import torch.multiprocessing as mp
    from torch.utils.data import DataLoader

    from napari_vos.training.prefetch import RecipeBatches, stop_workers

    recipe = _recipe()
    loader = DataLoader(RecipeBatches(recipe, seed=0, start_step=0), batch_size=None, num_workers=1,
                        multiprocessing_context=mp.get_context("spawn"))
    stream = iter(loader)
    batch = next(stream)
    assert len(batch) == 1 and batch[0].frames.shape[1:] == (64, 96, 3)  # one clip at the recipe's size
    workers = list(stream._workers)
    stop_workers(stream)
    assert all(not w.is_alive() for w in workers)


def test_the_sequence_bank_keeps_labels_in_the_smallest_type_for_their_ids(tmp_path):
    from napari_vos.training.clips import SequenceBank

    _real_sequence(tmp_path)
    frames, labels = SequenceBank([tmp_path], size=(24, 32), exclude=()).videos[0]
    assert frames.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.unique(labels).tolist() == [0, 1] and labels[:, 6:14, 8:14].all()


def test_stop_workers_takes_a_worker_dying_while_stopped_as_stopped():
    # a spawned worker's interpreter can abort at exit (SIGABRT) while torch's shutdown joins it: torch's
    # SIGCHLD check then raises RuntimeError from _shutdown_workers; stop_workers ends the workers all the same
    from napari_vos.training.prefetch import stop_workers

    joined = []

    class Worker:
        def join(self, timeout=None):
            joined.append(timeout)

    class Stream:
        _workers = [Worker(), Worker()]

        def _shutdown_workers(self):
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Aborted. ")

    stop_workers(Stream())
    assert joined == [5, 5]

    class Other(Stream):
        def _shutdown_workers(self):
            raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        stop_workers(Other())


def test_without_a_named_rate_a_run_takes_its_recipes_and_a_resume_keeps_its_own(tmp_path):
    # pins: TrainSettings(lr=None) trains at recipe.default_lr (1e-3 for a recipe without one); resumed
    # without a rate, a run goes on at the rate it was started with, not the recipe's
    quiet = lambda s: None  # noqa: E731
    slow = _TinyRecipe()
    slow.default_lr = 1e-4
    train(slow, tmp_path / "a", TrainSettings(steps=2, lr_drop_at=1.0, log_every=1), log=quiet)
    assert _logged_lr(tmp_path / "a") == [1e-4, 1e-4]  # lr_drop_at 1.0: never dropped (the log said so, wrongly)
    train(_TinyRecipe(), tmp_path / "b", TrainSettings(steps=2, lr_drop_at=1.0, log_every=1), log=quiet)
    assert _logged_lr(tmp_path / "b") == [1e-3, 1e-3]
    run = tmp_path / "c"
    train(_TinyRecipe(), run, TrainSettings(steps=2, lr=0.05, lr_drop_at=1.0, log_every=1), log=quiet)
    lines = []
    train(slow, run, TrainSettings(steps=4, lr_drop_at=1.0, log_every=1), resume=True, log=lines.append)
    assert _logged_lr(run) == [0.05] * 4
    assert "learning rate 0.05 (--lr not given: the resumed run's own)" in lines
    past = tmp_path / "d"  # resumed after its 10x drop: the rate it trains at is said, not only the starting one
    train(_TinyRecipe(), past, TrainSettings(steps=3, lr_drop_at=0.5, log_every=1), log=quiet)
    lines.clear()
    train(_TinyRecipe(), past, TrainSettings(steps=4, log_every=1), resume=True, log=lines.append)
    assert "learning rate 0.001 (--lr not given: the resumed run's own), now 0.0001: 10x lower since step 1" in lines
    assert _logged_lr(past)[-1] == pytest.approx(1e-4)
    train(slow, run, TrainSettings(steps=6, lr=0.01, lr_drop_at=1.0, log_every=1), resume=True, log=quiet)
    assert _logged_lr(run)[4:] == [0.01, 0.01]  # a named rate wins


@pytest.mark.parametrize("method, config, rate", [("frtm", None, 1e-3), ("agame", None, 1e-4), ("s2s", None, 1e-4),
                                                  ("rgmp", None, 1e-4), ("rgmp", "light:video", 2e-5)])
def test_each_recipe_has_its_default_rate(method, config, rate):
    from napari_vos.training.recipes import make_recipe

    assert make_recipe(method, synthetic_fraction=1.0, config=config).default_lr == rate


def test_validation_frames_are_never_the_reference_and_differ_where_the_window_has_room():
    # pins: FRTM's two validation frames are other frames than the reference, drawn without replacement
    from napari_vos.training.clips import sample_clip_from

    t = 10
    frames = np.broadcast_to((np.arange(t) * 20).astype(np.uint8)[:, None, None, None], (t, 24, 32, 3)).copy()
    labels = np.zeros((t, 24, 32), np.uint8)
    labels[:, 6:18, 8:24] = 1
    rng = np.random.default_rng(0)
    for _ in range(200):
        clip = sample_clip_from(frames, labels, 3, 2, rng, (24, 32))
        ref, a, b = (round(float(f.mean()) * 255 / 20) for f in clip.frames)
        assert ref not in (a, b) and a != b and abs(a - ref) <= 2 and abs(b - ref) <= 2
    two = sample_clip_from(frames[:2], labels[:2], 3, 2, rng, (24, 32))  # one other frame: it repeats
    ref, a, b = (round(float(f.mean()) * 255 / 20) for f in two.frames)
    assert a == b != ref
