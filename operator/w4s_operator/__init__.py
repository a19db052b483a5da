"""The w4s Kubernetes operator: a thin kopf layer that turns WorkflowOptimization and MetaAgentTraining resources
into Jobs, Deployments and policies that run ``w4s`` commands, and their progress back into status."""
