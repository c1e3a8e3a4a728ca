using TorchSharp;

namespace Cora.Tests;

/// <summary>Locates ../shared and scratch folders; tests needing shared data skip with a clear message when it is absent.</summary>
public static class TestPaths
{
    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "Cora.sln"))) d = d.Parent;
            return d?.FullName ?? throw new InvalidOperationException("Cora.sln not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The shared folder (CORA_SHARED or ../shared beside the checkout), or null.</summary>
    public static string? SharedOrNull
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("CORA_SHARED");
            if (env == "none") return null;            // simulate a clone without ../shared
            if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
            var p = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
            return Directory.Exists(p) ? p : null;
        }
    }

    public static string Shared(params string[] parts)
    {
        var root = SharedOrNull;
        if (root is null) Assert.Inconclusive("Skipped: ../shared (or CORA_SHARED) is not present; this test needs the shared data/models.");
        var p = Path.Combine(new[] { root! }.Concat(parts).ToArray());
        if (!File.Exists(p) && !Directory.Exists(p)) Assert.Inconclusive($"Skipped: {p} is not present in the shared folder.");
        return p;
    }

    /// <summary>The shared folder when present, else <see cref="Synthetic.SharedTree"/> (same layout, synthetic contents, no reference files).</summary>
    public static string SharedOrStandIn => SharedOrNull is { } s && File.Exists(Path.Combine(s, "models", "stories260K", "stories260K.bin")) ? s : Synthetic.SharedTree;

    public static string Stories260K => Shared("models", "stories260K", "stories260K.bin");
    public static string StoriesDir => Path.GetDirectoryName(Stories260K)!;

    /// <summary>NuGet's global packages folder (NUGET_PACKAGES, else ~/.nuget/packages).</summary>
    public static string NuGetPackages => Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } set ? set
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>A fresh temporary folder, deleted when disposed.</summary>
    public static TempDir Temp() => new();
}

/// <summary>
/// Test categories. <see cref="Slow"/>: end-to-end tests (child processes, kill and resume, the page in Chromium, the notebooks,
/// the README program run from the packages, the quickstart, the measurement runs of <c>cora bench</c>, garbage-collection and thread stress, whole-slice scoring comparisons, every method's
/// full train-save-reload run); the fast tier is
/// <c>dotnet test Cora.sln -c Release --filter "TestCategory!=Slow"</c>.
/// </summary>
public static class TestTiers
{
    public const string Slow = "Slow";
}

public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cora-tests", Guid.NewGuid().ToString("N"));
    public TempDir() => Directory.CreateDirectory(Path);
    public string this[string name] => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

public static class TensorAssert
{
    public static double MaxAbsDiff(torch.Tensor a, torch.Tensor b)
    {
        using var d = a.to(torch.float64).sub(b.to(torch.float64)).abs().max();
        return d.item<double>();
    }

    public static void Close(torch.Tensor expected, torch.Tensor actual, double tol, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        double d = MaxAbsDiff(expected, actual);
        Assert.IsTrue(d <= tol, $"{what}: max |diff| = {d:g4} > {tol:g4}");
    }
}
