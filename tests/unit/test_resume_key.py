"""The resume key names everything that changes a model's weights: an fp32 and a bf16 run,
or a one- and a two-process run, on the same data never share a model."""

import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.settings import Settings
from pipeline.training.job import resume_key


def test_precision_and_process_count_are_part_of_the_key():
    data = FamilyData(pd.DataFrame({"text": ["good", "bad"], "label": ["pos", "neg"]}),
                      pd.DataFrame({"text": ["fine"], "label": ["pos"]}))
    settings = Settings()
    fp32 = resume_key("sentiment", data, settings, "fp32", 1)
    assert fp32 == resume_key("sentiment", data, settings, "fp32", 1)  # the same job finds its run
    assert resume_key("sentiment", data, settings, "bf16", 1) != fp32
    assert resume_key("sentiment", data, settings, "fp32", 2) != fp32
    assert fp32.endswith("|precision=fp32|processes=1")
