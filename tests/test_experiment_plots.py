"""Seed 002's figures: each written from a small synthetic table, none with an empty panel."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from report_fixtures import synthetic_results
from scenesift.experiments import plots, stats
from scenesift.experiments.results import frame

FIGURES = {
    "variance": plots.plot_variance,
    "learning_curves": lambda df, p: plots.plot_learning_curves(df, p, full_value=0.74),
    "class_curves": plots.plot_class_curves,
    "learning_speed": plots.plot_learning_speed,
    "situations": plots.plot_situation_curves,
    "tagger": plots.plot_tagger_curves,
}


@pytest.fixture(scope="module")
def table():
    return synthetic_results(seeds=2, rounds=4, variance_runs=4)


@pytest.fixture
def drawn(monkeypatch):
    """The figures as they are saved, to inspect their axes."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


@pytest.mark.parametrize("name", FIGURES)
def test_each_figure_is_a_readable_png_with_no_empty_panel(name, table, tmp_path, drawn):
    assert plots.has_rows(table, name)
    path = FIGURES[name](table, tmp_path / f"{name}.png")
    assert path == tmp_path / f"{name}.png" and path.stat().st_size > 10_000
    with Image.open(path) as im:
        assert im.format == "PNG"
        width, height = im.size
    assert 500 <= width <= 2000 and 300 <= height <= 2000
    (fig,) = drawn
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert panels and all(ax.has_data() for ax in panels)
    assert all(ax.get_title() or fig.get_suptitle() for ax in panels)


@pytest.mark.parametrize("name", FIGURES)
def test_a_figure_without_its_rows_says_which_rows_and_how_to_get_them(name, tmp_path):
    other = frame([{"experiment": "t", "study": "other", "run": "r", "strategy": "x",
                    "seed": 0, "n_labelled": 1, "metric": "nothing", "value": 1.0}])  # fmt: skip
    assert not plots.has_rows(other, name) and not plots.has_rows(None, name)
    with pytest.raises(ValueError, match=r"results table has no .* rows; "):
        FIGURES[name](other, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_one_seed_and_undefined_values_still_plot(tmp_path, drawn):
    df = synthetic_results(seeds=1, rounds=3, variance_runs=1)
    df.loc[df.index[::7], "value"] = float("nan")
    for name, plot in FIGURES.items():
        assert plot(df, tmp_path / f"{name}.png").exists()
    assert all(ax.has_data() for fig in drawn for ax in fig.axes if ax.get_visible())


def test_unknown_figure_name_is_refused(table):
    with pytest.raises(ValueError, match="unknown figure"):
        plots.has_rows(table, "nope")


def test_baseline_is_grey_and_dashed_and_colours_are_stable():
    a = plots.strategy_styles(["random", "margin", "entropy"])
    b = plots.strategy_styles(["margin", "entropy", "random", "badge"])
    assert a["random"] == {"color": "0.35", "ls": "--"}
    assert a["entropy"] != a["margin"]
    assert (
        plots.class_colors(["car", "truck"])["car"] == plots.class_colors(["truck", "car"])["car"]
    )
    assert b["random"] == a["random"]


def test_class_curves_scale_to_the_data_and_name_classes_without_a_value(tmp_path, drawn):
    df = synthetic_results(seeds=2, rounds=4, variance_runs=1)
    per_class = (df["metric"] == "ap50") & (df["class"] != "all")
    df.loc[per_class, "value"] *= 0.2  # every class stays under 0.2 (a small budget)
    df.loc[per_class & (df["class"] == "traffic_cone"), "value"] = float("nan")  # no objects
    plots.plot_class_curves(df, tmp_path / "classes.png")
    (fig,) = drawn
    highest = df.loc[per_class, "value"].max()
    low, high = fig.axes[0].get_ylim()
    assert low == 0 and highest < high <= 1.25 * highest  # not 0-1: the curves fill the panel
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "traffic_cone: undefined (no test objects)" in legend and "traffic_cone" not in legend
    assert "car" in legend


def test_classes_and_situations_measured_on_too_few_are_flagged_where_drawn(tmp_path, drawn):
    from scenesift.experiments.stats import EVAL_FRAMES, EVAL_OBJECTS

    df = synthetic_results(seeds=2, rounds=4, variance_runs=1)
    base = {"experiment": "t", "study": "strategies", "run": "counts", "strategy": "random",
            "seed": 0, "round": 0, "n_labelled": 0}  # fmt: skip
    classes = sorted(set(df.loc[df["class"] != "all", "class"]))
    situations = sorted(set(df.loc[(df["metric"] == "map50") & (df["situation"] != "all"),
                                   "situation"]))  # fmt: skip
    counts = [{**base, "metric": EVAL_OBJECTS, "class": c, "value": 12 if c == classes[0] else 500}
              for c in classes] + [
        {**base, "metric": EVAL_FRAMES, "situation": s, "value": 40 if s == situations[0] else 900}
        for s in situations]  # fmt: skip
    df = pd.concat([df, frame(counts)], ignore_index=True)
    plots.plot_class_curves(df, tmp_path / "classes.png")
    plots.plot_situation_curves(df, tmp_path / "situations.png")
    classes_fig, situations_fig = drawn
    legend = [t.get_text() for t in classes_fig.legends[0].get_texts()]
    assert f"{classes[0]} (12 test objects < 100)" in legend and classes[1] in legend
    titles = {ax.get_title(): ax.title.get_color() for ax in situations_fig.axes if ax.get_title()}
    assert titles[f"{situations[0]} (40 positive test frames < 100)"] == "firebrick"
    assert all(not t.startswith(situations[1] + " (900") for t in titles)  # enough: no flag


def test_a_fusions_long_label_is_wrapped_in_legends_and_panel_titles(table, tmp_path, drawn):
    fusion = ("fusion(method=rank,parts=[least_confidence(agg=sum,weight=0.5),"
              "balance_situations(weight=0.5)])")  # fmt: skip
    other = next(s for s in table["strategy"].unique() if s != plots.BASELINE)
    df = table.assign(strategy=table["strategy"].replace(other, fusion))
    for name in ("learning_curves", "class_curves", "learning_speed", "situations"):
        with Image.open(FIGURES[name](df, tmp_path / f"{name}.png")) as im:
            assert im.size[0] <= 2000
    texts = [ax.get_title() for fig in drawn for ax in fig.axes]
    legends = [*(leg for fig in drawn for leg in fig.legends),
               *(ax.get_legend() for fig in drawn for ax in fig.axes)]  # fmt: skip
    texts += [t.get_text() for leg in legends if leg is not None for t in leg.get_texts()]
    shown = [t for t in texts if "balance_situations" in t]
    assert len(shown) >= 4  # the legend or a panel title of every figure names it ...
    assert all(len(line) <= 50 for t in shown for line in t.split("\n"))  # ... on short lines
    assert all(t.replace("\n", "").startswith(fusion) for t in shown)  # ... and in full


def test_the_violins_show_each_strategys_mean_where_a_budget_is_a_subset_size(
    table, tmp_path, drawn
):
    """The fixture's campaigns run 100-400 labelled frames and its random subsets are of
    200, 400, 800, 1,200 and 2,000 frames: both strategies' means sit beside the 200- and
    400-frame violins (the first two, at x = 1 and 2), at the campaigns' mean, and
    nowhere else."""
    plots.plot_variance(table, tmp_path / "v.png")
    (fig,) = drawn
    (ax,) = [a for a in fig.axes if a.get_visible()]
    diamonds = [line for line in ax.get_lines() if line.get_marker() == "D"]
    lc = stats.learning_curves(table).set_index(["strategy", "n_labelled"])["mean"]
    got = sorted((round(float(d.get_xdata()[0])), float(d.get_ydata()[0])) for d in diamonds)
    want = sorted((n // 200, lc[s, n]) for s in ("random", "least_confidence")
                  for n in (200, 400))  # fmt: skip
    assert [x for x, _ in got] == [x for x, _ in want]
    assert [y for _, y in got] == pytest.approx([y for _, y in want])
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == ["random", "least_confidence"]
    assert "diamonds: the campaigns' mean" in ax.get_title()
