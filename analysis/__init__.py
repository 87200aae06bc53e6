"""Paper tables and figures from erdiff results (needs the ``analysis`` extra: pandas, matplotlib).

* :mod:`analysis.collect` reads any mix of run and sweep directories (:mod:`erdiff.results` format);
* :mod:`analysis.scores` picks each seed's score (last / best / last-k) and notes partial results;
* :mod:`analysis.tables` builds the D4RL table and two-field ablation tables;
* :mod:`analysis.render` writes them as Markdown, LaTeX or CSV;
* :mod:`analysis.stats` and :mod:`analysis.plots` give robust aggregates (IQM, stratified bootstrap,
  performance profiles) and figures;
* :mod:`analysis.cli` is ``erdiff table``.
"""
