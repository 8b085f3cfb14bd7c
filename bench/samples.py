"""Source lines that look like real frames' context lines, shared by the benchmarks."""

LINES = [
    "response = self.session_pool.request(method, url, timeout=30)",
    "raise ConnectionError(err, request=request) from err now",
    "return self.send(prepared, allow_redirects=True, **kwargs)",
    "resp = conn.urlopen(method=request.method, url=url, body=b)",
    "order = await self.repo.get_order(order_id, for_update=True)",
    "result = handler(event, context, retries=self.max_retries)",
    "total = sum(item.price * item.quantity for item in lines)",
    "self._validate_payload(payload, schema=self.schema, strict=1)",
    "return await call_next(request, background=background_tasks)",
    "raise HTTPError(status_code=502, detail='upstream failed')",
]
