import server
import server.client


def test_public_surface_is_exactly_what_handler_authors_use() -> None:
    assert set(server.__all__) == {
        "Audit",
        "CommitScheduler",
        "ConfigError",
        "DeliveryContext",
        "GiveUp",
        "HubClient",
        "InstancesClient",
        "RetryLater",
        "RetryPolicy",
        "Router",
        "ScheduledRun",
        "Settings",
        "State",
        "WebhookPayload",
        "WebhookPayloadComment",
        "WebhookPayloadDiscussion",
        "WebhookPayloadDiscussionChanges",
        "WebhookPayloadEvent",
        "WebhookPayloadMovedTo",
        "WebhookPayloadRepo",
        "WebhookPayloadUpdatedRef",
        "WebhookPayloadUrl",
        "WebhookPayloadWebhook",
        "WebhooksServer",
        "__version__",
        "on",
        "schedule",
        "webhook_endpoint",
    }
    for name in server.__all__:
        assert hasattr(server, name), name


def test_client_surface_exports_resolve() -> None:
    for name in server.client.__all__:
        assert hasattr(server.client, name), name
    assert issubclass(server.client.RepoNotFound, server.client.NotFound)
    assert issubclass(server.client.NotFound, server.client.HubHTTPError)
    assert issubclass(server.client.HubHTTPError, server.client.HubError)
    assert issubclass(server.client.HubConnectionError, server.client.HubError)
