"""SensorThings API 1.1 over the sensors and their observations (no copy): the OData
query language (``odata``), the entities read (``service``), the endpoints and the
creation of observations through the ingest path (``endpoints``)."""
