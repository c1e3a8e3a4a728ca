using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.ML;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Tests;

/// <summary>
/// The image the Dockerfile builds, checked without a container runtime: the publish command its build stage runs (read from the
/// Dockerfile) gives a folder holding the entry point, the CPU libtorch and the page; the runtime stage runs as a non-root user
/// on the port ASPNETCORE_URLS names; and the published tool serves a model from that folder (readiness, metrics).
/// tools/image/build.sh builds and smoke-tests the real image where docker, podman or buildah can run.
/// </summary>
[TestClass]
public class ImageLayoutTests
{
    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(900_000)]
    public async Task TheDockerfilesPublishHoldsARunnableServerAndItsRuntimeStageIsLockedDown()
    {
        var dockerfile = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "Dockerfile"));
        var args = Regex.Matches(dockerfile, @"^ARG (\w+)=(\S+)$", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        string publish = Regex.Match(dockerfile, @"^RUN (dotnet publish [^\n]+)$", RegexOptions.Multiline).Groups[1].Value;
        Assert.IsTrue(publish.Contains(" -o /app"), publish);
        var runtime = dockerfile[dockerfile.LastIndexOf("FROM ", StringComparison.Ordinal)..];
        StringAssert.Matches(runtime, new Regex(@"^USER [1-9][0-9]*$", RegexOptions.Multiline), "a numeric non-root user (runAsNonRoot can check it)");
        var port = Regex.Match(runtime, @"ASPNETCORE_URLS=http://\+:(\d+)").Groups[1].Value;
        StringAssert.Contains(runtime, $"EXPOSE {port}");
        var entry = Regex.Match(runtime, @"ENTRYPOINT \[""dotnet"", ""/app/([^""]+)""\]").Groups[1].Value;
        Assert.AreEqual("cora.dll", entry);

        using var dir = TestPaths.Temp();
        string app = dir["app"];
        string command = Regex.Replace(publish.Replace(" -o /app", $" -o \"{app}\""), @"\$\{(\w+)\}", m => args[m.Groups[1].Value]);
        var (code, output) = TestProcess.Run("bash", $"-c \"cd '{TestPaths.RepoRoot}' && {command.Replace("\"", "\\\"")}\"", 600);
        Assert.AreEqual(0, code, output);
        Assert.IsTrue(File.Exists(Path.Combine(app, entry)), "the entry point");
        Assert.IsTrue(Directory.GetFiles(app, "libtorch_cpu.so", SearchOption.AllDirectories).Length == 1, "the CPU libtorch travels with the tool");

        // The published tool serves a model whose LLM has moved (--llm): ready, metrics, the page.
        string llm = Synthetic.CopyLlmFolder(dir["llm"]);
        using (var m = new Microsoft.ML.Cora.CoraModel(Slice.SmallOptions(Microsoft.ML.Cora.Methods.CoraMethod.Cora), Microsoft.ML.Cora.Llm.LanguageModel.Load(llm), Synthetic.SmallMf(), Synthetic.Items)
        { Users = Microsoft.ML.Cora.Data.UserProfiles.FromRows(Synthetic.Train.Take(2000)) })
        using (var t = CoraTransformer.Create(new MLContext(1), m))
            new MLContext(1).Model.Save(t, new MLContext(1).Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train.Take(2))).Schema, dir["m.zip"]);
        // The model moves to another machine layout: its LLM is elsewhere, and one flag finds it.
        Directory.Move(llm, dir["moved-llm"]);
        var psi = new ProcessStartInfo("dotnet", $"\"{Path.Combine(app, entry)}\" serve --model \"{dir["m.zip"]}\" --llm \"{dir["moved-llm"]}\" --port 0 --threads 1") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["CORA_TMPDIR"] = dir["tmp"];
        using var server = Process.Start(psi)!;
        try
        {
            string? url = null;
            var waited = Stopwatch.StartNew();
            while (url is null && waited.Elapsed < TimeSpan.FromMinutes(3))
            {
                var line = await server.StandardOutput.ReadLineAsync();
                if (line is null) break;
                url = Regex.Match(line, @"listening on (http://\S+?) ").Groups[1].Value is { Length: > 0 } u ? u : null;
            }
            if (url is null)
            {
                server.Kill(true);
                Assert.Fail("the published server did not start: " + await server.StandardError.ReadToEndAsync());
            }
            using var http = new HttpClient { BaseAddress = new Uri(url) };
            StringAssert.Contains(await http.GetStringAsync("/readyz"), "\"status\":\"ready\"");
            StringAssert.Contains(await http.GetStringAsync("/metrics"), "cora_model_info{model_id=\"");
            StringAssert.Contains(await http.GetStringAsync("/"), "<title>Cora");
        }
        finally { if (!server.HasExited) server.Kill(true); }
    }
}
