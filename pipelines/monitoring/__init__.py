"""Watch a served model after deploy: data drift of new releases against the champion's training data,
live study-level performance of the champion (and the challenger in shadow), and what to do about it."""
