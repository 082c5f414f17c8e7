"""Samplers compiled from a DiseaseProfile into numpy tables, drawn per batch."""
