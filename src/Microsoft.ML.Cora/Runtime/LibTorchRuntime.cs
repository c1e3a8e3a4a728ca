using System.Runtime.InteropServices;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// "Bring your own libtorch": when <c>CORA_LIBTORCH</c> names a folder holding <c>libtorch_cpu.so</c> (and, for GPUs,
/// <c>libtorch_cuda.so</c>) — for example the <c>lib</c> folder of an installed PyTorch,
/// <c>python -c "import torch, os; print(os.path.dirname(torch.__file__))"</c>/lib — Cora loads those libraries by
/// full path before TorchSharp starts, so TorchSharp's native shim binds to them and no <c>LD_LIBRARY_PATH</c> is
/// needed. Use it with a build that bundles no libtorch (<c>-p:CoraLibTorchPackage=none</c>).
/// TorchSharp 0.107 targets libtorch 2.10; PyTorch 2.11 (CUDA 13) was also seen to work.
/// </summary>
public static class LibTorchRuntime
{
    /// <summary>The environment variable naming a folder with libtorch to load instead of the bundled one.</summary>
    public const string EnvironmentVariable = "CORA_LIBTORCH";

    // Order matters: each library's dependencies come first, so the loader finds them by soname.
    private static readonly string[] CpuLibraries = { "libc10.so", "libtorch_cpu.so", "libtorch.so" };
    private static readonly string[] CudaLibraries = { "libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so" };
    private static readonly object Gate = new();
    private static bool _done;
    private static Exception? _failure;

    /// <summary>What <see cref="EnsureLoaded"/> will do: the files to load in order, or the one-line reason it cannot.
    /// <see cref="Shim"/>: TorchSharp's native shim to load last, from a copy whose libstdc++ requirement is weakened where this
    /// host lacks it (<see cref="FromPackageFolder"/> only).</summary>
    internal sealed record LoadPlan(IReadOnlyList<string> Files, string? Error, bool Cuda, string? Shim = null)
    {
        /// <summary>Whether the natives come from the NuGet package folder (a host that loads the assemblies from there, such as a notebook kernel).</summary>
        public bool FromPackageFolder => Shim is not null;
    }

    /// <summary>Plans the load from the variable's value and the application folder (pure: touches nothing but the file system's listing).</summary>
    /// <param name="ldLibraryPath">The process's LD_LIBRARY_PATH (a libtorch found there is left to TorchSharp).</param>
    /// <param name="torchSharpAssembly">Where TorchSharp.dll was loaded from: when it is the NuGet package folder
    /// (<c>.../torchsharp/VERSION/lib/TFM/TorchSharp.dll</c>) and nothing is beside the app, the natives are taken from the packages there.</param>
    /// <param name="libTorchPackage">The libtorch package and version this build was made against (<c>libtorch-cpu-linux-x64/2.10.0</c>).</param>
    internal static LoadPlan Plan(string? folder, string appDirectory, string? ldLibraryPath = null, string? torchSharpAssembly = null, string? libTorchPackage = null)
    {
        string hint = $"Set {EnvironmentVariable} to the folder that holds libtorch_cpu.so, e.g. the output of: python3 -c \"import torch, os; print(os.path.dirname(torch.__file__) + '/lib')\"";
        if (string.IsNullOrWhiteSpace(folder))
        {
            var places = BundledFolders(appDirectory)
                .Concat((ldLibraryPath ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries));
            bool found = !OperatingSystem.IsLinux() || places.Any(d => File.Exists(Path.Combine(d, "libtorch_cpu.so")));
            if (!found && PackageFolderPlan(torchSharpAssembly, libTorchPackage) is { } fromPackages) return fromPackages;
            return new(Array.Empty<string>(), found ? null
                : $"No libtorch: none beside the app ({appDirectory}) or on LD_LIBRARY_PATH, and {EnvironmentVariable} is not set. Reference the libtorch-cpu-linux-x64 package (Cora.Core brings it unless it is excluded; in Cora's own tree, build without -p:CoraLibTorchPackage=none), or {char.ToLowerInvariant(hint[0])}{hint[1..]}.", false);
        }
        if (!Directory.Exists(folder))
            return new(Array.Empty<string>(), $"{EnvironmentVariable}='{folder}' is not a folder. {hint}", false);
        bool cuda = File.Exists(Path.Combine(folder, "libtorch_cuda.so"));
        var wanted = (cuda ? CudaLibraries : CpuLibraries).Select(f => Path.Combine(Path.GetFullPath(folder), f)).ToList();
        var missing = wanted.Where(f => !File.Exists(f)).Select(Path.GetFileName).ToList();
        if (missing.Count > 0)
            return new(Array.Empty<string>(), $"{EnvironmentVariable}='{folder}' has no {string.Join(", ", missing)}. {hint}", cuda);
        foreach (var bundled in BundledFolders(appDirectory))
            if (File.Exists(Path.Combine(bundled, "libtorch_cpu.so")) && !SameFile(Path.Combine(bundled, "libtorch_cpu.so"), Path.Combine(folder, "libtorch_cpu.so")))
                return new(Array.Empty<string>(), $"{EnvironmentVariable} is set, but this build also bundles libtorch ({Path.Combine(bundled, "libtorch_cpu.so")}); two copies cannot share a process. Rebuild or publish with -p:CoraLibTorchPackage=none, or unset {EnvironmentVariable}.", cuda);
        return new(wanted, null, cuda);
    }

    /// <summary>The CPU libtorch and TorchSharp's shim in the NuGet package folder that holds <paramref name="torchSharpAssembly"/>,
    /// or null when that is not a package folder or the libtorch package is not there.</summary>
    private static LoadPlan? PackageFolderPlan(string? torchSharpAssembly, string? libTorchPackage)
    {
        if (string.IsNullOrEmpty(torchSharpAssembly) || string.IsNullOrEmpty(libTorchPackage)) return null;
        // .../packages/torchsharp/0.107.0/lib/net8.0/TorchSharp.dll
        var version = Directory.GetParent(torchSharpAssembly)?.Parent?.Parent;
        var root = version?.Parent?.Parent;
        if (version is null || root is null || !string.Equals(version.Parent!.Name, "torchsharp", StringComparison.OrdinalIgnoreCase)) return null;
        string shim = Path.Combine(version.FullName, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        string natives = Path.Combine(root.FullName, libTorchPackage.Replace('/', Path.DirectorySeparatorChar), "runtimes", "linux-x64", "native");
        var files = CpuLibraries.Select(f => Path.Combine(natives, f)).ToList();
        if (!File.Exists(shim) || files.Any(f => !File.Exists(f))) return null;
        return new(files, null, false, shim);
    }

    /// <summary>Where a build's own libtorch sits: the app folder, or runtimes/linux-x64/native below it.</summary>
    private static string[] BundledFolders(string appDirectory) => new[] { appDirectory, Path.Combine(appDirectory, "runtimes", "linux-x64", "native") };

    private static bool SameFile(string a, string b) => Path.GetFullPath(a) == Path.GetFullPath(b);

    /// <summary>Loads the libtorch named by <c>CORA_LIBTORCH</c> once per process (no-op when unset). Throws one clear line on failure.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (!_done)
            {
                _done = true;
                _failure = TryLoad(Plan(Environment.GetEnvironmentVariable(EnvironmentVariable), AppContext.BaseDirectory,
                    Environment.GetEnvironmentVariable("LD_LIBRARY_PATH"), typeof(TorchSharp.torch).Assembly.Location, BuiltAgainst));
            }
            if (_failure is not null) throw _failure;
        }
    }

    /// <summary>The libtorch package this build was made against (from the assembly's metadata), e.g. <c>libtorch-cpu-linux-x64/2.10.0</c>.</summary>
    private static string? BuiltAgainst => typeof(LibTorchRuntime).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
        .Cast<System.Reflection.AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "CoraLibTorchPackage")?.Value;

    private static Exception? TryLoad(LoadPlan plan)
    {
        if (plan.Error is not null) return new InvalidOperationException(plan.Error);
        var files = plan.Files.ToList();
        if (plan.Shim is { } shim)
        {
            try { files.Add(GlibcxxRequirement.HostHasVersion() ? shim : WeakenedCopy(shim, NativeCache)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                return new InvalidOperationException($"Could not prepare TorchSharp's native shim {shim} for this libstdc++ ({OneLine(e.Message)}). Build the app with the Cora.Core package (its build applies the fix), or set {EnvironmentVariable}.", e);
            }
        }
        foreach (var f in files)
        {
            try { NativeLibrary.Load(f); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                return new InvalidOperationException($"{EnvironmentVariable}: could not load {f} ({OneLine(e.Message)}). The libtorch there is missing a dependency or is incompatible: TorchSharp 0.107 targets libtorch 2.10 (PyTorch 2.10 or 2.11 seen to work); run 'cora doctor' after fixing.", e);
            }
        }
        return null;
    }

    /// <summary>A copy of <paramref name="shim"/> in <paramref name="folder"/> with its GLIBCXX_3.4.32 requirement weak (made once,
    /// written atomically; the package folder is never changed). Returns the copy's path.</summary>
    internal static string WeakenedCopy(string shim, string folder)
    {
        var bytes = File.ReadAllBytes(shim);
        GlibcxxRequirement.Weaken(bytes);
        var target = Path.Combine(folder, $"{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes))[..16]}-{Path.GetFileName(shim)}");
        if (!File.Exists(target)) IO.AtomicFile.Write(target, stream => stream.Write(bytes));
        return target;
    }

    /// <summary>Where patched copies are kept between runs: <c>native</c> in Cora's cache folder (<see cref="CpuChoices.CacheFolder"/>),
    /// else in the scratch folder for this process.</summary>
    private static string NativeCache => Path.Combine(CpuChoices.CacheFolder() ?? IO.ScratchSpace.Root, "native");

    private static string OneLine(string s) => s.Replace('\n', ' ').Replace('\r', ' ').Trim();

    /// <summary>Where this process's <c>libtorch_cpu.so</c> was mapped from (read from /proc/self/maps), or null before TorchSharp started.</summary>
    public static string? LoadedFrom()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps)) return null;
        foreach (var line in File.ReadLines(maps))
        {
            int i = line.IndexOf('/');
            if (i >= 0 && line.EndsWith("/libtorch_cpu.so", StringComparison.Ordinal)) return Path.GetDirectoryName(line[i..]);
        }
        return null;
    }
}
