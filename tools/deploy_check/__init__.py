"""Offline checks of deploy/: the Dockerfile, the compose file and the Kubernetes manifests.

``python -m tools.deploy_check`` (``make deploy-check``, part of ``make lint``)
lints the Dockerfile with hadolint, validates the compose file against the
compose-spec schema, every Kubernetes manifest against the API schemas of a
pinned Kubernetes version (core kinds) or the vendored CRD schemas (Strimzi,
KEDA), and holds the manifests to what the code declares: the KafkaTopics to
`streams.topics`, the autoscaler's ceiling to the partition count.
"""
