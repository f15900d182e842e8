"""Task modules (one per layer) and the config model for the messaging platform deploy."""
