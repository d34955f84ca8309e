import json

import numpy as np
import pytest
import soundfile as sf
import torch

from hlora_cli.errors import HloraError
from hlora_cli.model import BackboneRef, load_backbone
from hlora_cli.model.backbone import _hf_config, additive_mask
from tests.conftest import TINY, waves


def encode(bb, feats):
    h, lengths = bb.embed(feats)
    mask = additive_mask(lengths, h.shape[1], h.dtype)
    for i in range(bb.num_layers):
        h = bb.layer(i, h, mask)
    return bb.finish(h), lengths


@pytest.fixture
def backbone(kind):
    return load_backbone(BackboneRef(kind, config=TINY[kind]))


def test_shapes_and_interface(backbone):
    feats = backbone.prepare(waves([1.0, 0.5]))
    h, lengths = encode(backbone, feats)
    assert backbone.num_layers == 4 and backbone.hidden_size == 64
    assert h.shape == (2, int(lengths.max()), 64)
    # 50 output frames a second on both families (Whisper: 10 ms mel, stride 2; tiny HuBERT:
    # convs of stride 5*8*8 = 320, by hand: 16000 -> 3199 -> 399 -> 50 and 8000 -> 1599 -> 199 -> 25)
    assert backbone.frames_per_second == 50.0
    assert lengths.tolist() == [50, 25]


def test_padding_does_not_change_an_utterance(backbone):
    short, long = waves([0.7, 1.9], seed=3)
    with torch.no_grad():
        alone, n = encode(backbone, backbone.prepare([short]))
        padded, lengths = encode(backbone, backbone.prepare([short, long]))
    assert lengths[0] == n[0]
    torch.testing.assert_close(padded[0, : n[0]], alone[0], atol=1e-5, rtol=0)


def test_audio_shorter_than_one_frame_is_a_clear_error(backbone):
    with pytest.raises(HloraError, match=r"utterance 1 of the batch has 100 samples .* shorter than one output frame"):
        backbone.prepare([np.zeros(16000, np.float32), np.zeros(100, np.float32)])


def test_same_seed_same_fingerprint_other_seed_differs(kind):
    a = load_backbone(BackboneRef(kind, config=TINY[kind], seed=1))
    b = load_backbone(BackboneRef(kind, config=TINY[kind], seed=1))
    c = load_backbone(BackboneRef(kind, config=TINY[kind], seed=2))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_random_backbone_leaves_the_global_rng_alone(kind):
    from transformers import HubertModel, Wav2Vec2Model
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    ref = BackboneRef(kind, config=TINY[kind], seed=3)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = load_backbone(ref)
    assert torch.equal(torch.get_rng_state(), before)
    b = load_backbone(ref)
    # the weights are those of the HF constructor right after torch.manual_seed(seed), as before the fork
    torch.manual_seed(ref.seed)
    hf = {"whisper": WhisperEncoder, "hubert": HubertModel, "wav2vec2": Wav2Vec2Model}[kind](_hf_config(ref))
    expected = hf.state_dict()
    got_a, got_b = ((x.encoder if kind == "whisper" else x.model).state_dict() for x in (a, b))
    assert list(expected) == list(got_a) == list(got_b)
    for name, value in expected.items():
        assert torch.equal(got_a[name], value) and torch.equal(got_b[name], value), name
    assert a.fingerprint == b.fingerprint


def test_unknown_kind_and_missing_source_are_clear_errors(tmp_path):
    with pytest.raises(HloraError, match="backbone kind 'conformer' is not supported"):
        load_backbone(BackboneRef("conformer", config={}))
    from hlora_cli.model.backbone import detect_kind

    with pytest.raises(HloraError, match="not a transformers model directory"):
        detect_kind(str(tmp_path))


@pytest.mark.slow
def test_whisper_base_layer_by_layer_equals_transformers_encoder(whisper_base, real_manifest):
    from transformers import WhisperFeatureExtractor, WhisperModel

    bb = load_backbone(BackboneRef("whisper", source=str(whisper_base)))
    reference = WhisperModel.from_pretrained(whisper_base).get_encoder().eval()
    row = json.loads(real_manifest.read_text().splitlines()[0])
    wav, sr = sf.read(real_manifest.parent / row["audio"], dtype="float32")
    assert sr == 16000
    fe = WhisperFeatureExtractor.from_pretrained(whisper_base)
    mel = fe(wav, sampling_rate=16000, return_tensors="pt").input_features  # padded to 30 s
    assert mel.shape[-1] == 3000
    with torch.no_grad():
        ours, lengths = encode(bb, type(bb.prepare([wav]))(mel, torch.tensor([3000])))
        theirs = reference(mel).last_hidden_state
    assert lengths.tolist() == [1500]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_whisper_base_true_length_of_a_real_clip(whisper_base, real_manifest):
    bb = load_backbone(BackboneRef("whisper", source=str(whisper_base)))
    assert (bb.num_layers, bb.hidden_size) == (6, 512)
    row = json.loads(real_manifest.read_text().splitlines()[1])
    wav, _ = sf.read(real_manifest.parent / row["audio"], dtype="float32")
    feats = bb.prepare([wav])
    n_mel = int(feats.lengths[0])
    assert n_mel == len(wav) // 160 // 2 * 2  # 10 ms frames, true length, not 3000
    with torch.no_grad():
        h, lengths = encode(bb, feats)
    assert lengths.tolist() == [n_mel // 2] and h.shape == (1, n_mel // 2, 512)
    assert torch.isfinite(h).all()


def test_group_norm_frontend_takes_each_utterances_own_statistics_in_one_batched_call():
    from hlora_cli.model.backbone import group_normed_frontend

    bb = load_backbone(BackboneRef("hubert", config=TINY["hubert"]))
    assert bb.per_utterance_frontend  # HuBERT-base style: group norm over time in the first conv layer
    fe = bb.model.feature_extractor
    lengths = [16000, 11213, 4801, 4800]  # 4801 leaves a sample the first conv's stride does not reach
    x = torch.zeros(len(lengths), max(lengths))
    for i, (w, n) in enumerate(zip(waves([n / 16000 for n in lengths], seed=5), lengths, strict=True)):
        x[i, :n] = torch.from_numpy(w[:n]) + 0.3 * i  # offsets the padding's zeros would pull the mean from
    with torch.no_grad():
        batched = group_normed_frontend(fe, x, torch.tensor(lengths))
        plain = fe(x)  # transformers' group norm: the padding's zeros in every row's statistics
        for i, n in enumerate(lengths):
            alone = fe(x[i : i + 1, :n])[0]
            torch.testing.assert_close(batched[i, :, : alone.shape[-1]], alone, atol=1e-5, rtol=0)
            if n < max(lengths):
                assert (plain[i, :, : alone.shape[-1]] - alone).abs().max() > 1e-2
