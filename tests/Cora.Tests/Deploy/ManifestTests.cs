using Cora.Cli;

namespace Cora.Tests;

/// <summary>
/// The Kubernetes manifests in deploy/kubernetes deploy as they are: every document is checked against the Kubernetes API's JSON
/// schemas (required fields, types, enums: kubernetes-models through node, deploy/validate) and read strictly into the API's
/// typed models (an unknown or misspelt field fails: KubernetesClient), and the arguments they pass parse as cora's.
/// </summary>
[TestClass]
public class ManifestTests
{
    private static string Dir => Path.Combine(TestPaths.RepoRoot, "deploy", "kubernetes");
    private static string[] Manifests => Directory.GetFiles(Dir, "*.yaml").OrderBy(f => f, StringComparer.Ordinal).ToArray();

    private static List<object> Strict(string yaml) => k8s.KubernetesYaml.LoadAllFromString(yaml, strict: true);

    [TestMethod]
    public void EveryManifestReadsStrictlyIntoTheApiModelsAndPassesCorasArgumentsThatParse()
    {
        Assert.IsTrue(Manifests.Length >= 4, string.Join(", ", Manifests));
        int containers = 0;
        foreach (var file in Manifests)
            foreach (var doc in Strict(File.ReadAllText(file)))
            {
                var spec = doc switch
                {
                    k8s.Models.V1Job j => j.Spec.Template.Spec,
                    k8s.Models.V1Deployment d => d.Spec.Template.Spec,
                    k8s.Models.V1Service => null,
                    _ => throw new AssertFailedException($"{file}: unexpected kind {doc.GetType().Name}"),
                };
                if (spec is null) continue;
                Assert.IsTrue(spec.SecurityContext?.RunAsNonRoot == true, $"{file}: runs as non-root");
                foreach (var c in spec.Containers)
                {
                    containers++;
                    Assert.IsTrue(c.SecurityContext?.ReadOnlyRootFilesystem == true && c.SecurityContext.AllowPrivilegeEscalation == false, $"{file}: locked-down container");
                    Assert.IsNotNull(c.Resources?.Requests, $"{file}: resource requests");
                    var (parse, _) = CoraCli.Parse(c.Args.ToArray(), new CliContext(TextWriter.Null, TextWriter.Null, default));
                    Assert.AreEqual(0, parse.Errors.Count, $"{file}: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
                }
                if (doc is k8s.Models.V1Job job && job.Spec.CompletionMode == "Indexed")
                {
                    Assert.IsNotNull(job.Spec.ActiveDeadlineSeconds, $"{file}: a deadline");
                    Assert.IsNotNull(job.Spec.TtlSecondsAfterFinished, $"{file}: a TTL");
                    var failIndex = job.Spec.PodFailurePolicy.Rules.Single(r => r.Action == "FailIndex").OnExitCodes.Values;
                    CollectionAssert.AreEquivalent(new[] { CoraCli.Usage, CoraCli.BadInput }, failIndex.ToArray(), $"{file}: the exit codes retrying cannot help");
                }
                if (doc is k8s.Models.V1Deployment dep)
                {
                    var c = dep.Spec.Template.Spec.Containers.Single();
                    Assert.AreEqual("/readyz", c.ReadinessProbe.HttpGet.Path);
                    Assert.AreEqual("/healthz", c.LivenessProbe.HttpGet.Path);
                    Assert.IsNotNull(c.Lifecycle?.PreStop, "readiness drops before SIGTERM");
                    Assert.AreEqual("0", dep.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);
                    Assert.IsTrue(c.Env.Any(e => e.Name == ServeCommand.ApiKeyVariable && e.ValueFrom?.SecretKeyRef is not null), "the API key from a Secret");
                }
            }
        Assert.IsTrue(containers >= 4);
        // A misspelt field is an error, not silently dropped.
        string typo = File.ReadAllText(Path.Combine(Dir, "score-job.yaml")).Replace("backoffLimitPerIndex:", "backoffLimitPerIndx:");
        Assert.ThrowsExactly<YamlDotNet.Core.YamlException>(() => Strict(typo));
    }

    [TestMethod]
    public void EveryManifestValidatesAgainstTheKubernetesSchemas()
    {
        string validate = Path.Combine(TestPaths.RepoRoot, "deploy", "validate");
        if (!File.Exists(Path.Combine(validate, "node_modules", "kubernetes-models", "package.json")))
        {
            var (npm, npmOut) = Run("npm", "install --no-audit --no-fund", validate, 300);
            if (npm != 0) Assert.Inconclusive($"npm install in deploy/validate failed (exit {npm}); .ci/run installs it: {npmOut}");
        }
        var (code, output) = Run("node", "validate.mjs " + string.Join(' ', Manifests.Select(f => $"\"{f}\"")), validate, 120);
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, $"{Manifests.Sum(f => File.ReadAllText(f).Split("\n---").Length)} valid, 0 problems");
        // The validator finds a missing required field and a wrong type.
        using var dir = TestPaths.Temp();
        File.WriteAllText(dir["bad.yaml"], File.ReadAllText(Path.Combine(Dir, "score-job.yaml")).Replace("        - name: cora\n", "        - nam: cora\n").Replace("completions: 8", "completions: eight"));
        (code, output) = Run("node", $"validate.mjs \"{dir["bad.yaml"]}\"", validate, 120);
        Assert.AreEqual(1, code, output);
        StringAssert.Contains(output, "name");
        StringAssert.Contains(output, "completions");
    }

    /// <summary>node and npm come from the machine's packages (.ci/run installs the validator's modules): where either is missing
    /// the schema half of this check reports itself skipped, saying what to install; the strict typed read above still runs.</summary>
    private static (int code, string output) Run(string exe, string args, string cwd, int seconds)
    {
        try { return TestProcess.Run(exe, args, seconds, cwd); }
        catch (System.ComponentModel.Win32Exception) { Assert.Inconclusive($"{exe} is not installed (apt-get install nodejs npm)."); throw; }
    }
}
