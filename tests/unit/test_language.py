"""pipeline.language: the shares of Latin and CJK letters decide the sentiment encoder
(MiniLM unless the texts are not mostly Latin) and the baseline's features (character
n-grams when at least a fifth of the letters are CJK)."""

from __future__ import annotations

import pytest

from pipeline.language import SAMPLE_CHARACTERS, script_mix


@pytest.mark.parametrize(
    ("texts", "mostly_latin", "cjk_heavy"),
    [
        (["这个商品质量很好，物流也很快", "包装破损，非常失望"], False, True),  # Chinese (Han)
        (["とても美味しいです", "カタカナのレビュー"], False, True),  # Japanese kana (and a kanji)
        (["배송이 빠르고 품질이 좋아요"], False, True),  # Korean hangul
        (["Great taste, will buy again", "Arrived broken."], True, False),  # English
        (["Очень плохое качество, не рекомендую"], False, False),  # Russian: Cyrillic is "other"
        (["Café crème brûlée, très bon"], True, False),  # accented Latin letters are Latin
    ],
    ids=["chinese", "japanese-kana", "korean", "english", "russian", "french"],
)
def test_script_of_single_language_texts(texts: list[str], mostly_latin: bool, cjk_heavy: bool) -> None:
    mix = script_mix(texts)
    assert mix.mostly_latin is mostly_latin
    assert mix.cjk_heavy is cjk_heavy


def test_shares_count_letters_only() -> None:
    # 4 Han + 4 Latin letters; digits, punctuation and spaces do not count
    mix = script_mix(["好评 good!! 123", "很快, fast... 4.5"])
    assert mix.letters == 4 + 8
    assert mix.cjk == pytest.approx(4 / 12)
    assert mix.latin == pytest.approx(8 / 12)


def test_mixed_texts_pick_by_the_majority_of_letters() -> None:
    # a Chinese shop whose reviews name English brands: still mostly CJK
    chinese_with_brands = script_mix(["iPhone 充电很快，电池续航非常好", "Nike 鞋子穿着很舒服，尺码标准"])
    assert not chinese_with_brands.mostly_latin and chinese_with_brands.cjk_heavy
    # an English shop naming a few teas in Chinese: 35 Latin letters and 5 Han, so MiniLM
    # and word n-grams
    english_with_chinese = script_mix(["Lovely green tea 绿茶", "Great oolong 乌龙茶 from Fujian"])
    assert english_with_chinese.cjk == pytest.approx(5 / 40)
    assert english_with_chinese.mostly_latin and not english_with_chinese.cjk_heavy
    assert "Latin" in english_with_chinese.describe() and "CJK" in english_with_chinese.describe()


@pytest.mark.parametrize("texts", [[], [""], ["123 !!! ..."]], ids=["no-texts", "empty-text", "no-letters"])
def test_no_letters_count_as_latin(texts: list[str]) -> None:
    mix = script_mix(texts)
    assert mix.letters == 0
    assert mix.mostly_latin and not mix.cjk_heavy


def test_only_a_sample_is_read() -> None:
    # a generator longer than the sample: the texts after SAMPLE_CHARACTERS are never looked at
    def texts():
        for _ in range(SAMPLE_CHARACTERS // 1_000 + 1):
            yield "a" * 1_000
        raise AssertionError("read past the sample")

    assert script_mix(texts()).mostly_latin
