"""The loaders: every form of model file, the weights they choose, strict state dicts, errors."""

import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import thermalizer
from thermalizer import ModelFileError, ThermalizerNet, Unet, load_emulator, load_thermalizer
from thermalizer.checkpoint import read


def file_tensors(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys()}


def assert_weights(model, tensors, prefix=""):
    """The module's state dict is exactly the file's weights under ``prefix``."""
    state = model.state_dict()
    names = {k[len(prefix) :] for k in tensors if k.startswith(prefix) and "/" not in k[len(prefix) :]}
    assert set(state) == names
    for k, v in state.items():
        assert torch.equal(v, tensors[prefix + k]), k


def test_shipped_models_load_with_their_own_names(shipped):
    small = shipped / "kolmogorov-small"
    emu = load_emulator(small / "emulator.safetensors")
    assert_weights(emu, file_tensors(small / "emulator.safetensors"))
    for path in [small / "thermalizer.safetensors", shipped / "quickstart" / "thermalizer.safetensors"]:
        th = load_thermalizer(path)
        assert_weights(th, file_tensors(path), prefix="ema/")
        assert th.levels == 200 and th.image == 32 and th.schedule.levels == 200
    qg = load_thermalizer(shipped / "quickstart" / "thermalizer.safetensors")
    # The QG scale is stored in float32 (it lies below float16's normal range): kept exactly.
    assert (
        qg.scale.tolist()
        == file_tensors(shipped / "quickstart" / "thermalizer.safetensors")["normalisation/scale"].tolist()
    )
    assert qg.shape.in_channels == 2 and 1e-7 < qg.scale[1] < qg.scale[0] < 1e-4
    # A physical QG state (PV ~ scale) classifies and denoises; a single state keeps its shape.
    x = torch.randn(3, 2, 32, 32, generator=torch.Generator().manual_seed(0)) * qg.scale.view(1, 2, 1, 1)
    levels = qg.classify(x)
    assert levels.shape == (3,) and levels.dtype == torch.int64 and bool(((levels >= 0) & (levels < 200)).all())
    y, applied = thermalizer.thermalize(qg, x[0], s_init=0, s_stop=0, noise_limit=199)
    assert y.shape == x[0].shape and torch.isfinite(y).all()
    assert applied.passes == [applied.levels[0]]
    one = emu.step(torch.zeros(1, 32, 32))
    assert one.shape == (1, 32, 32) and torch.isfinite(one).all()


def test_strict_load_state_dict_into_the_bare_networks(tiny):
    for model, cls in [("emulator", Unet), ("thermalizer", ThermalizerNet)]:
        path = tiny / model / "latest.safetensors"
        tensors = file_tensors(path)
        # The whole file has optimizer/, ema/ and normalisation/ tensors: refused by strict loading ...
        loaded = load_emulator(path) if model == "emulator" else load_thermalizer(path)
        args = (loaded.shape,) if cls is Unet else (loaded.shape, loaded.image, loaded.levels)
        with pytest.raises(RuntimeError, match="normalisation/scale"):
            cls(*args).load_state_dict(tensors, strict=True)
        # ... its weights (raw or EMA) are accepted as they are.
        for ema in [False] + ([True] if model == "thermalizer" else []):
            net = cls(*args)
            net.load_state_dict(read(path).weights(ema=ema), strict=True)
            assert_weights(net, tensors, prefix="ema/" if ema else "")


def test_checkpoints_and_exports_give_the_same_models(tiny):
    ck = tiny / "thermalizer" / "latest.safetensors"
    # Default: the EMA weights, as the rollout (rollout.ema: true); ema=False: the raw ones.
    assert_weights(load_thermalizer(ck), file_tensors(ck), prefix="ema/")
    assert_weights(load_thermalizer(ck, ema=False), file_tensors(ck))
    exported = load_thermalizer(tiny / "models" / "thermalizer.safetensors")
    raw = load_thermalizer(tiny / "raw" / "thermalizer.safetensors")
    for a, b in [(load_thermalizer(ck), exported), (load_thermalizer(ck, ema=False), raw)]:
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k
    assert not torch.equal(exported.state_dict()["final.weight"], raw.state_dict()["final.weight"])
    emu = load_emulator(tiny / "emulator" / "latest.safetensors")
    for k, v in load_emulator(tiny / "models" / "emulator.safetensors").state_dict().items():
        assert torch.equal(v, emu.state_dict()[k]), k
    # --half: each weight rounded to float16 (11 significant bits), the scale kept in float32.
    for a, b in [
        (emu, load_emulator(tiny / "half" / "emulator.safetensors")),
        (exported, load_thermalizer(tiny / "half" / "thermalizer.safetensors")),
    ]:
        assert torch.equal(a.scale, b.scale)
        for k, v in a.state_dict().items():
            assert torch.allclose(v, b.state_dict()[k], rtol=2**-11, atol=6e-8), k


def test_what_a_file_does_not_hold_is_refused_naming_it(tiny, tmp_path):
    cases = [
        (
            lambda: load_thermalizer(tiny / "raw" / "thermalizer.safetensors", ema=True),
            "raw/thermalizer.safetensors",
            "ema=True",
        ),
        (
            lambda: load_thermalizer(tiny / "models" / "thermalizer.safetensors", ema=False),
            "models/thermalizer.safetensors",
            "ema=False",
        ),
        (lambda: load_emulator(tiny / "emulator" / "latest.safetensors", ema=True), "latest.safetensors", "ema=True"),
        (
            lambda: load_thermalizer(tiny / "models" / "emulator.safetensors"),
            "models/emulator.safetensors",
            "'model' is 'emulator'",
        ),
        (lambda: load_emulator(tiny / "missing.safetensors"), "missing.safetensors", "no such file"),
        (lambda: load_emulator(tiny / "emulator" / "history.csv"), "history.csv", "not a safetensors file"),
    ]
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "other"})
    cases.append((lambda: load_emulator(foreign), "foreign.safetensors", "'format' is 'other'"))
    tensors = file_tensors(tiny / "models" / "emulator.safetensors")
    with safe_open(str(tiny / "models" / "emulator.safetensors"), framework="pt") as f:
        meta = f.metadata()
    tensors["normalisation/scale"] = -tensors["normalisation/scale"]
    negative = tmp_path / "negative-scale.safetensors"
    save_file(tensors, str(negative), metadata=meta)
    cases.append((lambda: load_emulator(negative), "negative-scale.safetensors", "'normalisation/scale' = [-"))
    del tensors["final.weight"]
    cut = tmp_path / "cut.safetensors"
    save_file(tensors, str(cut), metadata=meta)
    cases.append((lambda: load_emulator(cut), "cut.safetensors", "'final.weight' missing"))
    for load, name, what in cases:
        with pytest.raises(ModelFileError) as e:
            load()
        message = str(e.value)
        assert name in message and what in message and "\n" not in message, message


def test_states_of_another_shape_are_refused(shipped):
    emu = load_emulator(shipped / "kolmogorov-small" / "emulator.safetensors")
    qg = load_thermalizer(shipped / "quickstart" / "thermalizer.safetensors")
    for call, x, want in [
        (emu.step, torch.zeros(1, 2, 32, 32), "[batch, 1, N, N]"),
        (emu.step, torch.zeros(32, 32), "[batch, 1, N, N]"),
        (qg.classify, torch.zeros(2, 64, 64), "[batch, 2, 32, 32]"),
        (qg.thermalize, torch.zeros(1, 1, 32, 32), "[batch, 2, 32, 32]"),
    ]:
        kwargs = {"s_init": 2, "s_stop": 1, "noise_limit": 40} if call == qg.thermalize else {}
        with pytest.raises(ValueError, match=re.escape(want)) as e:
            call(x, **kwargs)
        assert str(tuple(x.shape)) in str(e.value)
    # The emulator is fully convolutional: any grid its levels can halve.
    assert emu.step(torch.zeros(1, 64, 64)).shape == (1, 64, 64)
    with pytest.raises(ValueError, match="a 30x30 grid cannot pass 3 levels"):
        emu.step(torch.zeros(1, 30, 30))
