using Microsoft.Extensions.Logging;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cora.Cli;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Methods;

namespace Cora.Tests;

/// <summary><c>cora serve</c> in-process (ASP.NET Core TestServer) and on loopback (Kestrel).</summary>
[TestClass]
public class ServeTests
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    internal static CoraTransformer SmallModel()
    {
        var model = Slice.Model(CoraMethod.Cora);
        model.Users = UserProfiles.FromRows(Slice.Train.Take(4000));
        return CoraTransformer.Create(new MLContext(1), model);
    }

    private static async Task<(WebApplication app, HttpClient client)> StartInProcess(CoraTransformer t, BatcherOptions? o = null)
    {
        var app = CoraService.Build(t, o ?? new BatcherOptions(), configure: b => b.WebHost.UseTestServer());
        await app.StartAsync();
        return (app, ((TestServer)app.Services.GetRequiredService<IServer>()).CreateClient());
    }

    [TestMethod]
    public async Task ScoreRecommendHealthAndOpenApiAnswerAsTheModelDoes()
    {
        using var t = SmallModel();
        var (app, client) = await StartInProcess(t);
        await using var _ = app;
        var health = await client.GetFromJsonAsync<JsonObject>("/healthz");
        Assert.AreEqual("ok", (string)health!["status"]!);

        var rows = Slice.Valid.Where(r => t.Model.Items.Contains(r.ItemId)).Take(20).ToList();
        var direct = t.Model.Score(rows.Select(r => r with { History = t.Model.Users.Liked(r.UserId) }).ToList());
        var resp = await client.PostAsJsonAsync("/score", new ScoreRequest(rows.Select(r => new ScorePair(r.UserId, r.ItemId, null)).ToList(), null), Json);
        Assert.AreEqual(HttpStatusCode.OK, resp.StatusCode, await resp.Content.ReadAsStringAsync());
        var body = (await resp.Content.ReadFromJsonAsync<ScoreResponse>(Json))!;
        Assert.AreEqual(rows.Count, body.Scores.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.AreEqual(rows[i].ItemId, body.Scores[i].Item);
            Assert.AreEqual(direct[i], body.Scores[i].Score, 1e-5 * Math.Max(1, Math.Abs(direct[i])), "the service scores as the model does (history from the model)");
            Assert.AreEqual("cora", body.Scores[i].Source);
        }

        int user = t.Model.Users.UserIds.First(u => t.Model.Cf.KnowsUser(u) && t.Model.Users.Liked(u).Length > 0);
        var rec = (await client.GetFromJsonAsync<RecommendResponse>($"/recommend/{user}?k=5", Json))!;
        var expected = t.Recommend(user, 5);
        CollectionAssert.AreEqual(expected.Select(r => r.ItemId).ToArray(), rec.Cora.Select(r => r.Item).ToArray(), "CF retrieval then re-rank, as Recommend");
        Assert.AreEqual(5, rec.Cf.Count);
        Assert.IsTrue(rec.Cf.Zip(rec.Cf.Skip(1)).All(p => p.First.Score >= p.Second.Score), "CF list ordered by CF score");
        Assert.IsTrue(rec.History.Count > 0 && rec.History.All(h => h.Title.Length > 0), "liked history with titles");

        var openapi = await client.GetStringAsync("/openapi/v1.json");
        StringAssert.Contains(openapi, "\"/score\"");
        StringAssert.Contains(openapi, "\"/recommend/{user}\"");
        StringAssert.Contains(await client.GetStringAsync("/"), "<title>Cora");
    }

    [TestMethod]
    public async Task BadRequestsGet400ProblemDetailsNamingTheField()
    {
        using var t = SmallModel();
        var (app, client) = await StartInProcess(t);
        await using var _ = app;
        async Task<JsonObject> Bad(HttpResponseMessage r)
        {
            Assert.AreEqual(HttpStatusCode.BadRequest, r.StatusCode);
            StringAssert.StartsWith(r.Content.Headers.ContentType!.MediaType, "application/problem+json");
            return (await r.Content.ReadFromJsonAsync<JsonObject>())!;
        }
        var e = await Bad(await client.PostAsJsonAsync("/score", new { pairs = Array.Empty<object>() }));
        Assert.IsNotNull(e["errors"]!["pairs"]);
        int item = t.Model.Items.Titles.Keys.First();
        e = await Bad(await client.PostAsJsonAsync("/score", new { pairs = new object[] { new { user = 1, item }, new { user = 1, item = 987654 }, new { item } }, deadline_ms = 0 }));
        Assert.IsNotNull(e["errors"]!["pairs[1].item"], e.ToJsonString());
        Assert.IsNotNull(e["errors"]!["pairs[2].user"], e.ToJsonString());
        Assert.IsNotNull(e["errors"]!["deadline_ms"], e.ToJsonString());
        // Malformed JSON, a wrong type, an unknown route: each an error status with a problem-details body, never an empty one.
        foreach (var (raw, status) in new[]
        {
            (await client.PostAsync("/score", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest),
            (await client.PostAsync("/score", new StringContent("{\"pairs\": [{\"user\": \"seven\", \"item\": 1}]}", System.Text.Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest),
            (await client.GetAsync("/recommend/not-a-number"), HttpStatusCode.NotFound),
        })
        {
            Assert.AreEqual(status, raw.StatusCode);
            StringAssert.StartsWith(raw.Content.Headers.ContentType?.MediaType, "application/problem+json");
            var body = JsonNode.Parse(await raw.Content.ReadAsStringAsync())!;
            Assert.AreEqual((int)status, (int)body["status"]!, body.ToJsonString());
        }
        e = await Bad(await client.GetAsync("/recommend/1?k=0"));
        Assert.IsNotNull(e["errors"]!["k"]);
        foreach (var (flag, value) in new[] { ("--port", "70000"), ("--host", "my host") })
        {
            var (code, _, err) = CliTests.Cli("serve", "--model", "m.zip", flag, value);
            Assert.AreEqual(2, code, flag);
            StringAssert.Contains(err, flag);
        }
    }

    [TestMethod]
    public async Task ConcurrentRequestsAreMergedAndPastTheDeadlineTheCfScoreAnswers()
    {
        using var t = SmallModel();
        var (app, client) = await StartInProcess(t, new BatcherOptions { MaxWait = TimeSpan.FromMilliseconds(50), MaxBatch = 64 });
        await using (app)
        {
            var f = await ServeLoad.RunAsync(client, t.Model, concurrency: 16, requests: 48, pairsPerRequest: 2);
            Assert.AreEqual(48, f.Answered, "every request answered once");
            Assert.AreEqual(0, f.Failed + f.Mismatched, "nothing dropped, duplicated or mixed up");
            var health = await client.GetFromJsonAsync<JsonObject>("/healthz");
            Assert.IsTrue((long)health!["batches"]! < 48, $"requests were merged into fewer model calls ({health["batches"]})");
        }
        // A deadline shorter than the batch wait: the answer is the CF stage's score, marked as such.
        var (app2, client2) = await StartInProcess(t, new BatcherOptions { MaxWait = TimeSpan.FromMilliseconds(400), Deadline = TimeSpan.FromMilliseconds(1) });
        await using (app2)
        {
            var pairs = ServeLoad.Pairs(t.Model, 0, 3);
            var body = (await (await client2.PostAsJsonAsync("/score", new ScoreRequest(pairs, null), Json)).Content.ReadFromJsonAsync<ScoreResponse>(Json))!;
            var cf = t.Model.Cf.ScoreRows(pairs.Select(p => new Interaction(p.User!.Value, p.Item!.Value, false, 0, true, t.Model.Users.Liked(p.User.Value))).ToList());
            Assert.IsTrue(body.Scores.All(s => s.Source == "cf"));
            CollectionAssert.AreEqual(cf, body.Scores.Select(s => s.Score).ToArray());
        }
    }

    [TestMethod]
    [Timeout(300_000)]
    public async Task OnLoopbackShutdownDrainsInFlightRequestsAndTheLoadRunReportsFigures()
    {
        using var t = SmallModel();
        var app = CoraService.Build(t, new BatcherOptions { MaxWait = TimeSpan.FromMilliseconds(100) }, new[] { "http://127.0.0.1:0" });
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        var inFlight = Enumerable.Range(0, 6).Select(i => http.PostAsJsonAsync("/score", new ScoreRequest(ServeLoad.Pairs(t.Model, i, 2), null), Json)).ToList();
        // Stop once the service holds all six (on a loaded machine a request may still be connecting after a fixed delay).
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while ((int)(await http.GetFromJsonAsync<JsonNode>("/healthz"))!["received"]! < 6)
        {
            Assert.IsTrue(waited.Elapsed < TimeSpan.FromSeconds(60), "the six requests did not reach the service");
            await Task.Delay(5);
        }
        await app.StopAsync();                      // graceful: the requests already received are answered
        foreach (var r in inFlight)
        {
            var resp = await r;
            Assert.AreEqual(HttpStatusCode.OK, resp.StatusCode);
        }
        await app.DisposeAsync();

        using var dir = TestPaths.Temp();
        var mlPath = dir["m.zip"];
        var ml = new MLContext(1);
        ml.Model.Save(t, ml.Data.LoadFromEnumerable(CoraInput.From(Slice.Train.Take(4))).Schema, mlPath);
        var (code, stdout, err) = CliTests.Cli("bench", "serve", "--model", mlPath, "--requests", "12", "--pairs", "2", "--concurrency", "1,4", "--json", dir["load.json"]);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "p50 ms");
        var levels = JsonNode.Parse(File.ReadAllText(dir["load.json"]))!["levels"]!.AsArray();
        Assert.AreEqual(2, levels.Count);
        foreach (var l in levels)
        {
            Assert.AreEqual(12, (int)l!["Answered"]!);
            Assert.AreEqual(0, (int)l["Failed"]! + (int)l["Mismatched"]!);
            Assert.IsTrue((double)l["P99Ms"]! >= (double)l["P50Ms"]! && (double)l["RowsPerSecond"]! > 0);
        }
    }
}

/// <summary>The request merger under abuse: abandoned work is not done, a failing request fails alone.</summary>
[TestClass]
public class ScoreBatcherTests
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static List<Interaction> Rows(CoraModel m, int n, int skip = 0) =>
        ServeLoad.Pairs(m, skip, n).Select(p => new Interaction(p.User!.Value, p.Item!.Value, false, 0, true, m.Users.Liked(p.User.Value))).ToList();

    [TestMethod]
    public async Task WorkWhoseAnswerIsNoLongerWantedIsDroppedOrStoppedBetweenChunks()
    {
        using var t = ServeTests.SmallModel();
        await using var b = new ScoreBatcher(t.Model, 8, new BatcherOptions { MaxWait = TimeSpan.Zero });
        // Cancelled before the loop reads it: never scored.
        using (var gone = new CancellationTokenSource())
        {
            gone.Cancel();
            Assert.IsTrue(b.TryEnqueue(Rows(t.Model, 4), gone.Token, out var never));
            await Assert.ThrowsExactlyAsync<TaskCanceledException>(() => never);
        }
        Assert.AreEqual(0L, Interlocked.Read(ref b.Started), "a cancelled request starts no model call");
        // Cancelled while its (long) model call runs: the call stops between chunks instead of scoring every row.
        using var late = new CancellationTokenSource();
        var big = Rows(t.Model, 4000);
        Assert.IsTrue(b.TryEnqueue(big, late.Token, out var stopped));
        while (Interlocked.Read(ref b.Started) == 0 && !stopped.IsCompleted) await Task.Delay(1);
        late.Cancel();
        await Assert.ThrowsExactlyAsync<TaskCanceledException>(() => stopped);
        Assert.AreEqual(2L, Interlocked.Read(ref b.Abandoned));
        Assert.AreEqual(0L, Interlocked.Read(ref b.Rows), "no call finished: the long one stopped part-way");
        // The batcher goes on serving.
        var rows = Rows(t.Model, 3);
        Assert.IsTrue(b.TryEnqueue(rows, CancellationToken.None, out var fine));
        CollectionAssert.AreEqual(t.Model.Score(rows, 8), await fine);
    }

    [TestMethod]
    public async Task WhenAMergedCallFailsOnlyTheRequestThatCausesItFails()
    {
        using var t = ServeTests.SmallModel();
        await using var b = new ScoreBatcher(t.Model, 8, new BatcherOptions { MaxWait = TimeSpan.FromMilliseconds(500) });
        var good1 = Rows(t.Model, 3);
        var bad = new List<Interaction> { good1[0] with { ItemId = 987_654 } };   // no title: its prompt cannot be built
        var good2 = Rows(t.Model, 2, skip: 5);
        Assert.IsTrue(b.TryEnqueue(good1, CancellationToken.None, out var a));
        Assert.IsTrue(b.TryEnqueue(bad, CancellationToken.None, out var failing));
        Assert.IsTrue(b.TryEnqueue(good2, CancellationToken.None, out var c));
        CollectionAssert.AreEqual(t.Model.Score(good1, 8), await a);
        CollectionAssert.AreEqual(t.Model.Score(good2, 8), await c);
        var e = await Assert.ThrowsAsync<Exception>(() => failing);
        StringAssert.Contains(e.Message, "987654");
    }

    /// <summary>A host disposed without being stopped (ASP.NET Core then raises no stopping events) still drains the batcher first:
    /// otherwise a model call could run on after the caller disposed the model it lent, on freed tensors.</summary>
    [TestMethod]
    public async Task DisposingTheAppWithoutStoppingItFinishesItsModelCallsFirst()
    {
        using var t = ServeTests.SmallModel();
        var app = CoraService.Build(t, new BatcherOptions { MaxWait = TimeSpan.FromSeconds(2) }, configure: b => b.WebHost.UseTestServer());
        await app.StartAsync();
        var served = app.Services.GetRequiredService<ServedModel>();
        var rows = Rows(t.Model, 3);
        Assert.IsTrue(served.Current.Batcher.TryEnqueue(rows, CancellationToken.None, out var scores));
        await app.DisposeAsync();                                        // the batch window (2 s) is still open
        Assert.IsTrue(scores.IsCompletedSuccessfully, "the queued model call finished before the app was gone");
        CollectionAssert.AreEqual(t.Model.Score(rows, 8), await scores);
        Assert.IsFalse(served.Current.Batcher.TryEnqueue(rows, CancellationToken.None, out _), "a disposed app takes no more work");
    }

    [TestMethod]
    public async Task APairWhosePromptCannotBeBuiltGets400NamingItAndRecommendGoesThroughTheBatcher()
    {
        using var t = ServeTests.SmallModel();
        int ctx = t.Model.Llm!.Config.MaxPositionEmbeddings;
        const int longItem = 990_001;
        t.Model.AddItems(new[] { KeyValuePair.Create(longItem, string.Join(" ", Enumerable.Repeat("Mississippi", ctx))) });
        var app = CoraService.Build(t, new BatcherOptions { MaxWait = TimeSpan.FromMilliseconds(200) }, configure: b => b.WebHost.UseTestServer());
        await app.StartAsync();
        await using var _ = app;
        var client = ((TestServer)app.Services.GetRequiredService<IServer>()).CreateClient();
        var pairs = ServeLoad.Pairs(t.Model, 0, 3);
        pairs.Insert(1, new ScorePair(pairs[0].User, longItem, null));
        var resp = await client.PostAsJsonAsync("/score", new ScoreRequest(pairs, null), Json);
        Assert.AreEqual(HttpStatusCode.BadRequest, resp.StatusCode);
        var errors = (await resp.Content.ReadFromJsonAsync<JsonObject>())!["errors"]!.AsObject();
        CollectionAssert.AreEqual(new[] { "pairs[1]" }, errors.Select(kv => kv.Key).ToArray(), errors.ToJsonString());
        StringAssert.Contains(errors["pairs[1]"]![0]!.ToString(), "tokens");
        pairs.RemoveAt(1);
        Assert.AreEqual(HttpStatusCode.OK, (await client.PostAsJsonAsync("/score", new ScoreRequest(pairs, null), Json)).StatusCode, "the others alone are fine");

        // /recommend: its candidates join the shared batches (counted as received), within the deadline the model ranks them.
        int user = t.Model.Users.UserIds.First(u => t.Model.Cf.KnowsUser(u) && t.Model.Users.Liked(u).Length > 0);
        long before = (long)(await client.GetFromJsonAsync<JsonObject>("/healthz"))!["received"]!;
        var rec = (await client.GetFromJsonAsync<RecommendResponse>($"/recommend/{user}?k=5", Json))!;
        Assert.AreEqual("cora", rec.Source);
        Assert.AreEqual(before + 1, (long)(await client.GetFromJsonAsync<JsonObject>("/healthz"))!["received"]!, "/recommend went through the batcher");
        CollectionAssert.AreEqual(t.Recommend(user, 5).Select(r => r.ItemId).ToArray(), rec.Cora.Select(r => r.Item).ToArray());
        // Past its deadline (shorter than the batch wait) the CF order answers, marked as such.
        rec = (await client.GetFromJsonAsync<RecommendResponse>($"/recommend/{user}?k=5&deadline_ms=1", Json))!;
        Assert.AreEqual("cf", rec.Source);
        CollectionAssert.AreEqual(rec.Cf.Select(r => r.Item).ToArray(), rec.Cora.Select(r => r.Item).ToArray(), "ranked by the CF score");
        var bad = await client.GetAsync($"/recommend/{user}?deadline_ms=0");
        Assert.AreEqual(HttpStatusCode.BadRequest, bad.StatusCode);
        StringAssert.Contains(await bad.Content.ReadAsStringAsync(), "deadline_ms");
    }
}

/// <summary>What an operator needs from <c>cora serve</c>: ids, probes, metrics, access control, limits, logs, reloads.</summary>
[TestClass]
public class ServiceOperationsTests
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed class CapturedLogs : Microsoft.Extensions.Logging.ILoggerProvider
    {
        public readonly System.Collections.Concurrent.ConcurrentQueue<string> Lines = new();
        public Microsoft.Extensions.Logging.ILogger CreateLogger(string category) => new Logger(this, category);
        public void Dispose() { }
        private sealed class Logger(CapturedLogs owner, string category) : Microsoft.Extensions.Logging.ILogger
        {
            private readonly System.Collections.Concurrent.ConcurrentStack<object> _scopes = new();
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull { _scopes.Push(state); return new Pop(_scopes); }
            public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel level) => true;
            public void Log<TState>(Microsoft.Extensions.Logging.LogLevel level, Microsoft.Extensions.Logging.EventId id, TState state, Exception? e, Func<TState, Exception?, string> format)
            {
                string scopes = string.Join(";", _scopes.Select(s => s is IEnumerable<KeyValuePair<string, object>> kv ? string.Join(",", kv.Select(x => $"{x.Key}={x.Value}")) : s.ToString()));
                owner.Lines.Enqueue($"{category}|{scopes}|{format(state, e)}");
            }
            private sealed class Pop(System.Collections.Concurrent.ConcurrentStack<object> s) : IDisposable { public void Dispose() => s.TryPop(out _); }
        }
    }

    private static async Task<(WebApplication app, HttpClient client, CapturedLogs logs)> Start(CoraTransformer t, ServeOptions? so = null)
    {
        var logs = new CapturedLogs();
        var app = CoraService.Build(t, new BatcherOptions(), configure: b => { b.WebHost.UseTestServer(); b.Logging.AddProvider(logs); }, serve: so);
        await app.StartAsync();
        return (app, ((TestServer)app.Services.GetRequiredService<IServer>()).CreateClient(), logs);
    }

    [TestMethod]
    public async Task EveryResponseCarriesARequestIdAndTheModelAndProbesMetricsAndLogsReport()
    {
        using var t = ServeTests.SmallModel();
        var (app, client, logs) = await Start(t, new ServeOptions { ModelId = "abc123def456" });
        await using var _ = app;
        var pairs = ServeLoad.Pairs(t.Model, 0, 3);
        var req = new HttpRequestMessage(HttpMethod.Post, "/score") { Content = JsonContent.Create(new ScoreRequest(pairs, null), options: Json) };
        req.Headers.Add("X-Request-Id", "caller-id-7");
        var resp = await client.SendAsync(req);
        Assert.AreEqual(HttpStatusCode.OK, resp.StatusCode);
        Assert.AreEqual("caller-id-7", resp.Headers.GetValues("X-Request-Id").Single(), "the caller's id is kept");
        Assert.AreEqual("abc123def456", resp.Headers.GetValues("X-Cora-Model").Single());
        Assert.IsFalse(string.IsNullOrEmpty(resp.Headers.GetValues("X-Cora-Version").Single()));
        var generated = (await client.GetAsync("/healthz")).Headers.GetValues("X-Request-Id").Single();
        Assert.AreEqual(16, generated.Length, "an id is made when none is sent");

        var ready = (await client.GetFromJsonAsync<JsonObject>("/readyz"))!;
        Assert.AreEqual("ready", (string)ready["status"]!);
        Assert.AreEqual("abc123def456", (string)ready["model_id"]!);

        string metrics = await client.GetStringAsync("/metrics");
        StringAssert.Contains(metrics, "cora_requests_total{route=\"/score\",status=\"200\"} 1");
        StringAssert.Contains(metrics, "cora_request_duration_seconds_count{route=\"/score\"} 1");
        StringAssert.Contains(metrics, "cora_batch_rows_count 1");
        StringAssert.Contains(metrics, "cora_rows_scored_total 3");
        StringAssert.Contains(metrics, "cora_model_info{model_id=\"abc123def456\"");
        foreach (var line in metrics.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')))
            Assert.IsTrue(System.Text.RegularExpressions.Regex.IsMatch(line, @"^[a-z_]+(\{[a-z_]+=""[^""]*""(,[a-z_]+=""[^""]*"")*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$"), $"not Prometheus text: {line}");

        var line7 = logs.Lines.FirstOrDefault(l => l.StartsWith("Cora.Serve|") && l.Contains("request_id=caller-id-7"));
        Assert.IsNotNull(line7, string.Join("\n", logs.Lines.Take(20)));
        StringAssert.Contains(line7, "POST /score 200");
        StringAssert.Contains(line7, "rows=3 source=cora model=abc123def456");
    }

    [TestMethod]
    public async Task AnApiKeyGuardsTheModelRoutesAndLimitsAnswerWithProblemDetails()
    {
        using var t = ServeTests.SmallModel();
        string key = new string('k', 24);
        var (app, client, _) = await Start(t, new ServeOptions { ApiKey = key, MaxRequestBytes = 2048, RatePerSecond = 0 });
        await using var _ = app;
        var body = new ScoreRequest(ServeLoad.Pairs(t.Model, 0, 2), null);
        var denied = await client.PostAsJsonAsync("/score", body, Json);
        Assert.AreEqual(HttpStatusCode.Unauthorized, denied.StatusCode);
        StringAssert.StartsWith(denied.Content.Headers.ContentType!.MediaType, "application/problem+json");
        var wrong = new HttpRequestMessage(HttpMethod.Post, "/score") { Content = JsonContent.Create(body, options: Json) };
        wrong.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key + "x");
        Assert.AreEqual(HttpStatusCode.Unauthorized, (await client.SendAsync(wrong)).StatusCode);
        var right = new HttpRequestMessage(HttpMethod.Post, "/score") { Content = JsonContent.Create(body, options: Json) };
        right.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        Assert.AreEqual(HttpStatusCode.OK, (await client.SendAsync(right)).StatusCode);
        var viaHeader = new HttpRequestMessage(HttpMethod.Get, "/users?limit=2");
        viaHeader.Headers.Add("X-Api-Key", key);
        Assert.AreEqual(HttpStatusCode.OK, (await client.SendAsync(viaHeader)).StatusCode);
        foreach (var open in new[] { "/healthz", "/readyz", "/metrics", "/", "/favicon.ico" })
            Assert.AreEqual(HttpStatusCode.OK, (await client.GetAsync(open)).StatusCode, open);
        // A body over the limit: 413 before it is read.
        var big = new HttpRequestMessage(HttpMethod.Post, "/score") { Content = new StringContent("{\"pairs\": [" + string.Join(",", Enumerable.Repeat("{\"user\": 1, \"item\": 2}", 200)) + "]}", System.Text.Encoding.UTF8, "application/json") };
        big.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        Assert.AreEqual(HttpStatusCode.RequestEntityTooLarge, (await client.SendAsync(big)).StatusCode);

        // A rate limit per client: past it, 429.
        var (app2, client2, _) = await Start(t, new ServeOptions { RatePerSecond = 2 });
        await using var __ = app2;
        var codes = new List<HttpStatusCode>();
        for (int i = 0; i < 6; i++) codes.Add((await client2.GetAsync("/healthz")).StatusCode);
        CollectionAssert.Contains(codes, HttpStatusCode.TooManyRequests);
        Assert.AreEqual(HttpStatusCode.OK, codes[0]);

        // The CLI refuses to listen beyond loopback without a key.
        var (code, _, err) = CliTests.Cli("serve", "--model", "m.zip", "--host", "0.0.0.0");
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(err, "needs an API key");
    }

    [TestMethod]
    public async Task AReloadSwapsTheModelAtomicallyAndAFailedOneKeepsTheOld()
    {
        using var t = ServeTests.SmallModel();
        var served = new ServedModel(t, new BatcherOptions(), "first", ownsModel: false);
        var app = CoraService.Build(served, new BatcherOptions(), null, b => b.WebHost.UseTestServer(), new ServeOptions { ModelId = "first" });
        await app.StartAsync();
        await using var _ = app;
        var client = ((TestServer)app.Services.GetRequiredService<IServer>()).CreateClient();
        var pairs = ServeLoad.Pairs(t.Model, 0, 4);
        var before = (await (await client.PostAsJsonAsync("/score", new ScoreRequest(pairs, null), Json)).Content.ReadFromJsonAsync<ScoreResponse>(Json))!;

        // Requests keep flowing during the reload; every one is answered.
        var load = ServeLoad.RunAsync(client, t.Model, concurrency: 4, requests: 24, pairsPerRequest: 2);
        var failed = await served.ReloadAsync(() => throw new InvalidDataException("model.zip: not a model file"));
        Assert.IsInstanceOfType<InvalidDataException>(failed);
        Assert.AreEqual("first", served.Current.Id, "a failed reload keeps the model");
        var next = ServeTests.SmallModel();
        Assert.IsNull(await served.ReloadAsync(() => (next, "second")));
        var f = await load;
        Assert.AreEqual(24, f.Answered);
        Assert.AreEqual(0, f.Failed + f.Mismatched);
        var after = await client.PostAsJsonAsync("/score", new ScoreRequest(pairs, null), Json);
        Assert.AreEqual("second", after.Headers.GetValues("X-Cora-Model").Single());
        var scores = (await after.Content.ReadFromJsonAsync<ScoreResponse>(Json))!;
        CollectionAssert.AreEqual(before.Scores.Select(s => s.Score).ToArray(), scores.Scores.Select(s => s.Score).ToArray(), "the same model file scores the same after a reload");
        string metrics = await client.GetStringAsync("/metrics");
        StringAssert.Contains(metrics, "cora_model_info{model_id=\"second\"");
        // The reloaded model's batches are counted too.
        long Batches(string m) => long.Parse(System.Text.RegularExpressions.Regex.Match(m, @"\ncora_batch_rows_count (\d+)").Groups[1].Value);
        long before2 = Batches(metrics);
        Assert.AreEqual(HttpStatusCode.OK, (await client.PostAsJsonAsync("/score", new ScoreRequest(pairs, null), Json)).StatusCode);
        Assert.AreEqual(before2 + 1, Batches(await client.GetStringAsync("/metrics")));
    }
}

/// <summary>A rolling restart on loopback, as Kubernetes does one: a new instance starts and becomes ready, the old one is stopped
/// (readiness fails first, it keeps answering through the drain delay, then finishes what it holds); a client that sends only to
/// ready instances sees no failed request.</summary>
[TestClass]
public class RollingRestartTests
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(300_000)]
    public async Task UnderLoadARollingRestartFailsNoRequest()
    {
        using var t = ServeTests.SmallModel();
        var serve = new ServeOptions { DrainDelay = TimeSpan.FromSeconds(1) };
        async Task<WebApplication> Start(string id)
        {
            var app = CoraService.Build(t, new BatcherOptions { MaxWait = TimeSpan.FromMilliseconds(2) }, new[] { "http://127.0.0.1:0" }, serve: serve with { ModelId = id });
            await app.StartAsync();
            return app;
        }
        var backends = new List<(string Url, string Id)>();
        var ready = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using var stop = new CancellationTokenSource();
        // The load balancer's view: each instance's readiness, polled every 50 ms (Kubernetes: readinessProbe periodSeconds).
        var poll = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (var (url, _) in backends.ToArray())
                {
                    try { ready[url] = (await http.GetAsync(url + "/readyz")).IsSuccessStatusCode; }
                    catch (HttpRequestException) { ready[url] = false; }
                }
                await Task.Delay(50);
            }
        });
        var a = await Start("old");
        lock (backends) backends.Add((a.Urls.First(), "old"));
        while (!ready.GetValueOrDefault(a.Urls.First())) await Task.Delay(10);

        int sent = 0, failed = 0;
        var answeredBy = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        async Task Client(int c)
        {
            var rng = new Random(c);
            while (!stop.IsCancellationRequested)
            {
                var live = backends.ToArray().Where(b => ready.GetValueOrDefault(b.Url)).ToArray();
                if (live.Length == 0) { await Task.Delay(5); continue; }
                var target = live[rng.Next(live.Length)];
                Interlocked.Increment(ref sent);
                try
                {
                    var resp = await http.PostAsJsonAsync(target.Url + "/score", new ScoreRequest(ServeLoad.Pairs(t.Model, c, 2), null), Json);
                    if (!resp.IsSuccessStatusCode) { Interlocked.Increment(ref failed); failures.Enqueue($"{target.Id}: {(int)resp.StatusCode}"); }
                    else answeredBy.AddOrUpdate(resp.Headers.GetValues("X-Cora-Model").Single(), 1, (_, n) => n + 1);
                }
                catch (HttpRequestException e) { Interlocked.Increment(ref failed); failures.Enqueue($"{target.Id}: {e.Message}"); }
            }
        }
        var clients = Enumerable.Range(0, 4).Select(c => Task.Run(() => Client(c))).ToArray();
        await Task.Delay(1000);
        // The rollout: the new instance comes up and becomes ready, then the old one is stopped.
        var b = await Start("new");
        lock (backends) backends.Add((b.Urls.First(), "new"));
        while (!ready.GetValueOrDefault(b.Urls.First())) await Task.Delay(10);
        string aUrl = a.Urls.First();
        var stopping = Task.Run(() => a.StopAsync());
        // Within the drain delay the old instance already fails readiness but still answers (a request the balancer sent just
        // before it noticed is served, not refused).
        while (ready.GetValueOrDefault(aUrl)) await Task.Delay(5);
        var readyz = await http.GetAsync(aUrl + "/readyz");
        Assert.AreEqual(HttpStatusCode.ServiceUnavailable, readyz.StatusCode);
        StringAssert.Contains(await readyz.Content.ReadAsStringAsync(), "draining");
        Assert.AreEqual(HttpStatusCode.OK, (await http.PostAsJsonAsync(aUrl + "/score", new ScoreRequest(ServeLoad.Pairs(t.Model, 99, 2), null), Json)).StatusCode);
        await stopping;
        await Task.Delay(1000);
        stop.Cancel();
        await Task.WhenAll(clients);
        await poll;
        await a.DisposeAsync();
        await b.StopAsync();
        await b.DisposeAsync();

        Assert.AreEqual(0, failed, $"{failed} of {sent} requests failed: {string.Join("; ", failures.Take(5))}");
        Assert.IsTrue(answeredBy.GetValueOrDefault("old") > 0 && answeredBy.GetValueOrDefault("new") > 0, $"both instances answered: {string.Join(", ", answeredBy)}");
    }
}

[TestClass]
public class ServeConfigurationTests
{
    [TestMethod]
    public void ServeSettingsComeFromEnvironmentVariablesByAspNetCoresConventionAndFlagsWin()
    {
        Assert.AreEqual("Cora__Serve__DeadlineMs", ServeCommand.EnvironmentKey("--deadline-ms"));
        Assert.AreEqual("Cora__Serve__MaxRequestBytes", ServeCommand.EnvironmentKey("--max-request-bytes"));
        System.CommandLine.ParseResult Parse(params string[] args) => CoraCli.Parse(new[] { "serve", "--model", "m.zip" }.Concat(args).ToArray(), new CliContext(TextWriter.Null, TextWriter.Null, default)).parse;
        int Deadline(System.CommandLine.ParseResult p) => p.GetValue<int>("--deadline-ms");
        try
        {
            Environment.SetEnvironmentVariable("Cora__Serve__DeadlineMs", "750");
            Assert.AreEqual(750, Deadline(Parse()));
            Assert.AreEqual(900, Deadline(Parse("--deadline-ms", "900")), "the flag wins");
            Environment.SetEnvironmentVariable("Cora__Serve__DeadlineMs", "soon");
            var bad = Parse();
            Assert.IsTrue(bad.Errors.Any(e => e.Message.Contains("Cora__Serve__DeadlineMs: 'soon' is not a whole number")), string.Join("; ", bad.Errors.Select(e => e.Message)));
        }
        finally { Environment.SetEnvironmentVariable("Cora__Serve__DeadlineMs", null); }
        Assert.AreEqual(BatcherOptions.DefaultDeadlineMs, Deadline(Parse()));
    }
}
