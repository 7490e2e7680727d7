import pytest

from pipeline.training import sentiment
from pipeline.training.core import cpu_has_fast_bf16


def test_scoring_precision_follows_the_host_unless_forced(monkeypatch):
    monkeypatch.delenv(sentiment.PRECISION_VARIABLE, raising=False)
    assert sentiment.scoring_precision("cuda") == "bfloat16"
    assert sentiment.scoring_precision("cpu") == ("bfloat16" if cpu_has_fast_bf16() else "float32")
    for forced in ("float32", "bfloat16"):
        monkeypatch.setenv(sentiment.PRECISION_VARIABLE, forced)
        assert sentiment.scoring_precision("cpu") == sentiment.scoring_precision("cuda") == forced
    monkeypatch.setenv(sentiment.PRECISION_VARIABLE, "FP32")
    assert sentiment.scoring_precision("cuda") == "float32"
    monkeypatch.setenv(sentiment.PRECISION_VARIABLE, "auto")
    assert sentiment.scoring_precision("cuda") == "bfloat16"
    monkeypatch.setenv(sentiment.PRECISION_VARIABLE, "fp16")
    with pytest.raises(ValueError, match="scoring_precision"):
        sentiment.scoring_precision("cpu")
