"""File formats at the bottom of the house: BED text and StarSpace's training and model files."""
