"""Fine-tuning: sentence/note classifiers (LoRA or full) and generator SFT; reads datasets only."""
