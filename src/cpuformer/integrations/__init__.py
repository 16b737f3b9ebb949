"""Integrations with other frameworks, each an optional extra: `cpuformer.integrations.ray` (`cpuformer[ray]`)."""
