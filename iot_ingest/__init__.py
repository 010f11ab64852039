"""MQTT -> store ingest of sensor observations. Not built yet."""
