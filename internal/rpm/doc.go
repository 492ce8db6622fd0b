// Package rpm holds the statistics of the IETF test "Responsiveness under
// Working Conditions", following draft-ietf-ippm-responsiveness-09 (the
// authors' repository, 2026-07-06): the single-sided trimmed mean, the
// moving-average goodput, the stability rule, the RPM formula from the four
// kinds of probe samples, the confidence of a result and the grade bands.
// It does no I/O: a prober drives a Stage interval by interval with the
// bytes its load-generating connections moved and the probes that
// completed, and Stage says how many connections to run, when goodput has
// saturated and when responsiveness is stable.
//
// # Readings where the draft is silent
//
//   - The trimmed mean keeps floor(TMP·n) of the sorted samples, at least
//     one (the draft gives no rounding).
//   - The standard deviation is the population one (÷n), compared with SDT
//     times the current value (the step list's "of the current_average").
//   - "The responsiveness at interval i" is the formula over the probes
//     that completed in intervals i−MAD+1 … i, the window the final result
//     uses too.
//   - The moving average does not exist before MAD intervals have ended
//     (draft-01 counted missing intervals as zero bytes).
//   - MPS bounds probe pairs: the step list launches one foreign and one
//     self probe every 1/MPS s; the draft's "300 KB/s" example counts
//     single probes instead. PTC bounds them further, at 5000 bytes per
//     foreign and 1000 per self probe.
//
// # Versions
//
// Drafts 02 to 08 set ID to 1 s; draft 09 set it to 5 s "pending further
// investigation". Params carries it, so a prober can offer both. Drafts 02
// and 03 computed RPM as 60000 over the mean of the foreign per-round-trip
// time and the self time (Components.RTTMeanRPM); draft 04 onward averages
// the two RPMs (Components.RPM), which rewards whichever side is faster.
//
// # Where goresponsiveness (the standard client, 2024-01) differs
//
//   - Its -rpm.tmp is the share of samples it keeps, so its default of 5
//     averages the fastest 5 %; run it with -rpm.tmp 95 for the draft's
//     trimmed mean.
//   - It uses the draft-02/03 formula (RTTMeanRPM), which reads 1.5× to 3×
//     lower than the draft-09 formula when self probes are 4–10× slower
//     than foreign round trips, as behind a deep queue.
//   - Its stability test takes the standard deviation of the last MAD
//     per-interval rates (not of moving averages) against SDT times their
//     mean (not the current value).
//   - It times a foreign probe as one duration (connect to body) and counts
//     a third of it for each of tcp_f, tls_f and http_f.
//   - It probes only after goodput saturation and ignores PTC.
//   - It reads only the older configuration keys with "https_" in them.
package rpm
