from fedpeft.report.ledger import Ledger, peak_rss_mb
from fedpeft.report.run_dir import RunDir
from fedpeft.report.summary import summary_text

__all__ = ["Ledger", "RunDir", "peak_rss_mb", "summary_text"]
