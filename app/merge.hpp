#pragma once
// `imgdl merge REPORT... [--report OUT]`: the reports of a list's shards (--shard K/N) joined into the
// report one process would have written for the whole list.

#include "option_docs.hpp"

namespace imgdl::app {

/// `imgdl merge` for the shell completion: its options as its --help lists them, and its operands, the
/// shards' reports (files).
SubcommandDoc merge_doc();

/// Runs `imgdl merge` with argv[1] == "merge": parses its options (CLI11), reads every report,
/// streaming, and writes the merged report to --report OUT (through a temporary file renamed at the
/// end, so a failed merge leaves no OUT) or stdout:
///  - "results": every report's results in input order (by "index"), each entry as its report had it;
///  - "invalid_lines": every report's, by line;
///  - "totals" recomputed from the results as a run counts them (a result marked "earlier_run", which a
///    rerun took from its journal, counts in "earlier_run" and not in "bytes"; "elapsed_s" is the
///    longest report's: the shards ran side by side), "interrupted" if any report was, "exit_code" as one
///    run's (130 if interrupted, 2 if a report ended on an input error, else 1 if anything failed or a line
///    was invalid, else 0);
///  - the head ("imgdl_version", "mode", "workers", "output_dir") from the first report, without "shard".
/// Refuses (exit 2, nothing written under OUT) a report that is missing or not an imgdl report, reports
/// of shards that do not make one whole list (shard counts or block sizes that differ, a shard given
/// twice or missing, a result outside its report's shard), a mix of shard and whole-run reports, and
/// any position found in two reports. The last two are found while writing: on stdout, the report is
/// then cut short (and the exit status 2).
///
/// Memory: results are external-sorted by index: runs of up to --sort-buffer bytes (64 MiB by default;
/// an eighth of it for invalid lines) are sorted in memory and spilled to anonymous temporary files,
/// then merged k ways (runs are merged into one whenever there are 64), so reports of any size cost the
/// buffer plus one result per run.
///
/// Returns the exit status: the merged report's exit_code, or 2 for a usage or input error.
int run_merge(int argc, char** argv);

}  // namespace imgdl::app
