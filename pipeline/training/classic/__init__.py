"""Classic models as candidates in their own right: TF-IDF + logistic regression
(:mod:`.text`), gradient boosting on lags, calendar, price and promo with calibrated
quantiles (:mod:`.forecast`), EASE and item-kNN (:mod:`.ranking`).

Each has ``fit(data, hp, model_dir, seed) -> {setting: value}`` and an MLflow pyfunc that
answers the family's question in the transformer's output format. The models themselves
are the reference baselines' code (:mod:`pipeline.evaluation.baselines`): a classic
candidate is that baseline fitted on ``data.train``, saved, and served. Files are written
in safe formats only (:mod:`.store`)."""
