"""Stream engines that drive the shared pipeline: Faust over Kafka, and the embedded one."""
