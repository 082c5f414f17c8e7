"""The papers' downstream experiments: DualAlign's training-data ablation, MedSyn's ICD
prediction; each trains classifiers over arms and seeds and writes a results directory."""
