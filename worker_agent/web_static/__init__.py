"""The labeling page of `asg-worker --labeler web`: static files shipped in the package."""
