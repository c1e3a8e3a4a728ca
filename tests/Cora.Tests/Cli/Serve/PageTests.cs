using Cora.Cli;
using Microsoft.Playwright;

namespace Cora.Tests;

/// <summary>The page of <c>cora serve</c> in a real browser: Debian's chromium, headless, driven by Playwright (installed by .ci/run).</summary>
[TestClass]
public class PageTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>The installed chromium (CORA_CHROMIUM, else Debian's), or null.</summary>
    internal static string? Chromium() =>
        new[] { Environment.GetEnvironmentVariable("CORA_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p));

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(300_000)]
    public async Task ThePageShowsAUsersRecommendationsAndScoresATitle()
    {
        var chromium = Chromium();
        if (chromium is null) Assert.Inconclusive("No chromium found (/usr/bin/chromium; set CORA_CHROMIUM): `apt-get install chromium` (.ci/run does) to run the browser test.");
        using var t = ServeTests.SmallModel();
        var app = CoraService.Build(t, new BatcherOptions(), new[] { "http://127.0.0.1:0" });
        await app.StartAsync();
        await using var _ = app;
        string url = app.Urls.First();

        using var pw = await Playwright.CreateAsync();
        await using var browser = await pw.Chromium.LaunchAsync(new() { ExecutablePath = chromium, Headless = true, Args = new[] { "--no-sandbox" } });
        var page = await browser.NewPageAsync();
        var failed = new List<string>();
        page.RequestFailed += (_, r) => failed.Add(r.Url);
        await page.GotoAsync(url + "/");
        await page.WaitForFunctionAsync("document.body.dataset.loaded !== undefined", null, new() { Timeout = 120_000 });
        int first = int.Parse(await page.EvalOnSelectorAsync<string>("#user", "e => e.value"));
        Assert.AreEqual(t.Model.Users.UserIds.First(), first, "the first user is selected");
        // Switch to a user with a liked history (the first may have none): the page reloads that user's lists.
        int user = t.Model.Users.UserIds.Take(500).First(u => u != first && t.Model.Users.Liked(u).Length > 0);
        await page.SelectOptionAsync("#user", user.ToString());
        await page.WaitForFunctionAsync($"document.body.dataset.loaded === '{user}'", null, new() { Timeout = 120_000 });
        // The service batches concurrent requests, so a row may be scored beside other rows than here, and scores then differ in
        // the last float bits: two candidates whose scores agree to 1e-4 may trade places (one beyond the 10th is fetched for that).
        var expected = t.Recommend(user, 11);
        var shown = (await page.Locator("#cora tbody tr td:nth-child(2)").AllTextContentsAsync()).ToArray();
        Assert.AreEqual(10, shown.Length, "the page lists 10");
        for (int i = 0; i < shown.Length; i++)
        {
            if (shown[i] == expected[i].Title) continue;
            var other = expected.FirstOrDefault(r => r.Title == shown[i]);
            Assert.IsNotNull(other, $"place {i + 1}: '{shown[i]}' is not among the model's top 11 for user {user}");
            Assert.AreEqual(expected[i].Score, other.Score, 1e-4, $"place {i + 1}: the page shows '{shown[i]}' where the model ranks '{expected[i].Title}' (only near-equal scores may trade places)");
        }
        Assert.AreEqual(10, await page.Locator("#cf tbody tr").CountAsync(), "CF alone side by side");
        foreach (var column in new[] { "#cf", "#cora" })
            foreach (var p in await page.Locator($"{column} tbody tr td:nth-child(3)").AllTextContentsAsync())
                Assert.IsTrue(double.Parse(p, System.Globalization.CultureInfo.InvariantCulture) is >= 0 and <= 1, $"{column}: {p} is a probability (both columns on one scale)");
        // Any user can be found, not only the first 500 listed; a bad Top says what is wrong.
        int last = t.Model.Users.UserIds.Last();
        await page.FillAsync("#find", last.ToString());
        await page.WaitForFunctionAsync($"document.body.dataset.loaded === '{last}'", null, new() { Timeout = 120_000 });
        await page.FillAsync("#k", "0");
        await page.DispatchEventAsync("#k", "change");
        StringAssert.Contains(await page.TextContentAsync("#status"), "from 1 to 100");
        await page.FillAsync("#k", "10");
        await page.FillAsync("#find", "");
        await page.WaitForFunctionAsync($"document.body.dataset.loaded === '{first}'", null, new() { Timeout = 120_000 });
        await page.SelectOptionAsync("#user", user.ToString());
        await page.DispatchEventAsync("#user", "change");
        await page.WaitForFunctionAsync($"document.body.dataset.loaded === '{user}'", null, new() { Timeout = 120_000 });
        Assert.IsTrue(await page.Locator("#history li").CountAsync() > 0, "the liked history");

        // Score a title: search, pick, score.
        string title = t.Model.Items.Titles.First().Value;
        await page.FillAsync("#q", title[..Math.Min(6, title.Length)]);
        await page.WaitForFunctionAsync("document.querySelectorAll('#titles option').length > 0");
        await page.FillAsync("#q", title);
        await page.ClickAsync("#score");
        await page.WaitForFunctionAsync("document.getElementById('result').textContent.startsWith('p(Yes)')");
        StringAssert.Contains(await page.TextContentAsync("#result"), "cora");

        // A test artifact kept after the run: artifacts/ (git-ignored) at the repository root, or CORA_ARTIFACTS.
        string shot = Path.Combine(Environment.GetEnvironmentVariable("CORA_ARTIFACTS") ?? Path.Combine(TestPaths.RepoRoot, "artifacts"), "cora-page.png");
        Directory.CreateDirectory(Path.GetDirectoryName(shot)!);
        await page.ScreenshotAsync(new() { Path = shot, FullPage = true });
        TestContext.AddResultFile(shot);
        TestContext.WriteLine($"screenshot: {shot}");
        Assert.IsTrue(new FileInfo(shot).Length > 10_000, "a real screenshot");
        Assert.AreEqual(0, failed.Count, "no failed requests (no external assets): " + string.Join(", ", failed));
    }
}
