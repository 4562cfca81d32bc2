"""`harness retrain`: a Kafka application that builds a training set from the stream (features the scorers
consumed, joined with the labels on the feedback topic), trains the current model's recipe on it, gates the
challenger against the champion on a holdout of the same window, and publishes it on the model topic only when
it is better. Production code, beside scoring/ and monitoring/."""
