"""health/latent.py: collapse measured between images, growth of that spread, advice that fits the cause."""
from health_rows import RUN_CONFIG, by_code, history, observe, set_train, train_rows
from test_health_training import low_lr_run


def collapsed(rows):
    """Every image maps to one z: the spread between images vanishes, the spread over dimensions stays."""
    set_train(rows, "latent_std", lambda t: 0.52)
    set_train(rows, "latent_diversity", lambda t: 6e-8)
    return set_train(rows, "latent_batch_std", lambda t: 3e-5)


def test_one_z_for_every_image_is_a_collapse_though_latent_std_looks_healthy():
    monitor, findings = observe(collapsed(history()))
    collapse = by_code(findings)["latent_collapse"]
    assert collapse.severity == "error" and "check the data" in collapse.action
    assert monitor.verdicts()["latent_space"].status == "problem"


def test_collapse_is_seen_with_latent_diversity_alone():
    rows = collapsed(history())
    for row in rows:
        row.pop("train/latent_batch_std", None)
        row.pop("val/latent_batch_std", None)
    assert "latent_diversity" in by_code(observe(rows)[1])["latent_collapse"].message


def test_z_that_nearly_share_a_direction_but_differ_are_no_collapse():
    rows = set_train(history(), "latent_diversity", lambda t: 0.1 if t < 1 else 3e-4)  # a real healthy quick run
    rows = set_train(rows, "latent_batch_std", lambda t: 0.02)  # about 0.03 of latent_std
    monitor, findings = observe(rows)
    assert "latent_collapse" not in by_code(findings)
    assert monitor.verdicts()["latent_space"].status == "healthy"


def test_a_latent_std_stuck_at_its_start_is_not_learning_and_asks_for_a_larger_latent():
    rows = set_train(history(), "latent_batch_std", lambda t: 0.05 * 0.95 ** t)  # shrinking first is normal
    monitor, findings = observe(set_train(rows, "latent_std", lambda t: 0.15))
    assert "raise latent_dim from 1024 to 2048" in by_code(findings)["latent_not_growing"].action
    verdict = monitor.verdicts()["latent_space"]
    assert verdict.status == "warning" and "latent_std" in verdict.summary


def test_when_the_loss_is_not_moving_latent_dim_is_not_blamed():
    rows, config = low_lr_run()
    epoch_ends = [row for row in rows if row["train/epoch"] * 7.25 % 7.25 == 0] or rows[7::8]
    for row in epoch_ends:  # validation rows, so latent growth is judged
        rows.insert(rows.index(row) + 1, {"global_step": row["global_step"], "val/epoch": round(row["train/epoch"]),
                                          "val/loss_total": row["train/loss_total"], "val/latent_std": 0.15})
    _, findings = observe(rows, config)
    codes = by_code(findings)
    assert "latent_dim" not in codes["latent_not_growing"].action
    assert "learning_rate" in codes["latent_not_growing"].action
    assert findings[0].code == "not_learning"


def test_without_the_new_spread_metrics_latent_std_still_judges_growth():
    rows = history()
    for row in train_rows(rows):
        del row["train/latent_batch_std"], row["train/latent_diversity"]
    assert observe(rows, RUN_CONFIG)[0].verdicts()["latent_space"].status == "healthy"
