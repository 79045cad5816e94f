"""The self-contained HTML report (``build_report``) and its key numbers for the terminal
(``report_summary_table``). Figures come from ``experiments.plots``, statistics from
``experiments.stats``."""

from scenesift.report.build import SECTIONS, build_report
from scenesift.report.summary import report_summary_table, verdict

__all__ = ["SECTIONS", "build_report", "report_summary_table", "verdict"]
