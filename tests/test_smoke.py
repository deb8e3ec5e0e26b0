def test_health_answers_ok(live_server):
    with live_server.client("dispatcher", "d-1") as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
