"""WhatsApp in the pipeline: the 24-hour customer-service window and the Cloud API webhooks."""
