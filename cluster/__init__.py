"""Sweeps on Ray clusters: launcher configs and KubeRay manifests (YAML, next to this file), `erdiff submit` and
`erdiff jobs` (:mod:`cluster.submit`, :mod:`cluster.jobs`), and the storage checks a multi-node sweep needs
(:mod:`cluster.storage`). cluster/README.md explains how they fit together."""
