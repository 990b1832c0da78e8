"""Fetching source datasets: verified, resumable downloads and safe archive extraction."""
