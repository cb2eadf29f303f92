"""Frame sources, normalisation, dataset readers/writers and synthetic video generators."""
