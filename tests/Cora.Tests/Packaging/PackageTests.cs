using System.IO.Compression;
using System.Reflection.Metadata;
using System.Xml.Linq;

namespace Cora.Tests;

/// <summary>
/// The packages a user references: what <c>dotnet pack</c> makes from this tree, and the README's ML.NET program run as written
/// from them, outside the repository, as a file-based app and as a console project.
/// </summary>
[TestClass]
public class PackageTests
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif
    private static readonly string[] Packed = { "Cora.Core", "Cora.Estimators" };

    /// <summary>The version both packages carry (Directory.Build.props).</summary>
    internal static string Version =>
        XDocument.Load(Path.Combine(TestPaths.RepoRoot, "Directory.Build.props")).Descendants("VersionPrefix").Single().Value;

    private static string CentralVersion(string id) =>
        XDocument.Load(Path.Combine(TestPaths.RepoRoot, "Directory.Packages.props")).Descendants("PackageVersion")
            .Single(e => (string?)e.Attribute("Include") == id).Attribute("Version")!.Value;

    /// <summary>Packs Cora.Core and Cora.Estimators from this tree's build (the test's configuration) into <paramref name="feed"/>.</summary>
    internal static void Pack(string feed)
    {
        foreach (var project in new[] { "src/Microsoft.ML.Cora/Microsoft.ML.Cora.csproj", "src/Cora.Estimators/Cora.Estimators.csproj" })
        {
            var (code, output) = TestProcess.Run("dotnet", $"pack \"{Path.Combine(TestPaths.RepoRoot, project)}\" -c {Configuration} --no-build --nologo -o \"{feed}\"", 300);
            Assert.AreEqual(0, code, output);
        }
    }

    private static XElement Nuspec(ZipArchive zip, string id)
    {
        using var s = zip.GetEntry(id + ".nuspec")!.Open();
        return XDocument.Load(s).Root!;
    }

    private static IEnumerable<XElement> Named(XElement root, string name) => root.Descendants().Where(e => e.Name.LocalName == name);

    [TestMethod]
    [TestCategory(TestTiers.Slow)]                                   // runs dotnet pack (child processes)
    public void PacksTwoConsistentlyNamedPackagesWithReadmeLicenseDocsSymbolsAndTheCpuLibTorch()
    {
        using var tmp = TestPaths.Temp();
        Pack(tmp.Path);
        string v = Version;
        foreach (var id in Packed)
        {
            Assert.IsFalse(id.StartsWith("Microsoft.", StringComparison.Ordinal), "the Microsoft.* prefix is reserved on nuget.org");
            using var zip = ZipFile.OpenRead(tmp[$"{id}.{v}.nupkg"]);
            var spec = Nuspec(zip, id);
            Assert.AreEqual(id, Named(spec, "id").Single().Value);
            Assert.AreEqual(v, Named(spec, "version").Single().Value);
            Assert.AreEqual("MIT", Named(spec, "license").Single().Value);
            Assert.AreEqual("README.md", Named(spec, "readme").Single().Value);
            Assert.IsNotNull(zip.GetEntry("README.md"), $"{id}: the readme is in the package");
            Assert.IsTrue(Named(spec, "description").Single().Value.Length > 40, $"{id}: a description");
            string dll = id == "Cora.Core" ? "Microsoft.ML.Cora" : "Cora.Estimators";
            Assert.IsNotNull(zip.GetEntry($"lib/net10.0/{dll}.dll"), $"{id}: the assembly");
            Assert.IsNotNull(zip.GetEntry($"lib/net10.0/{dll}.xml"), $"{id}: its XML documentation");

            // Symbols: the portable PDB in the .snupkg carries every source file (debugging steps into Cora without a checkout).
            using var symbols = ZipFile.OpenRead(tmp[$"{id}.{v}.snupkg"]);
            var pdb = symbols.GetEntry($"lib/net10.0/{dll}.pdb");
            Assert.IsNotNull(pdb, $"{id}: the PDB in the symbols package");
            using var pdbStream = new MemoryStream();
            using (var s = pdb.Open()) s.CopyTo(pdbStream);
            pdbStream.Position = 0;
            using var provider = MetadataReaderProvider.FromPortablePdbStream(pdbStream);
            var reader = provider.GetMetadataReader();
            var embeddedSource = new Guid("0E8A571B-6926-466E-B4AD-8AB04611F5FE");
            int embedded = reader.CustomDebugInformation.Select(reader.GetCustomDebugInformation).Count(c => reader.GetGuid(c.Kind) == embeddedSource);
            Assert.IsTrue(embedded >= reader.Documents.Count / 2 && embedded > 5, $"{id}: {embedded} of {reader.Documents.Count} sources embedded in the PDB");
        }

        using (var core = ZipFile.OpenRead(tmp[$"Cora.Core.{v}.nupkg"]))
        {
            var deps = Named(Nuspec(core, "Cora.Core"), "dependency").ToDictionary(d => (string)d.Attribute("id")!, d => (string)d.Attribute("version")!);
            Assert.AreEqual(CentralVersion("libtorch-cpu-linux-x64"), deps.GetValueOrDefault("libtorch-cpu-linux-x64"), "the CPU libtorch is a dependency by default");
            Assert.AreEqual(CentralVersion("TorchSharp"), deps.GetValueOrDefault("TorchSharp"));
            // The libstdc++ fix runs in the consumer's build: buildTransitive/<id>.targets and the task source it compiles.
            Assert.IsNotNull(core.GetEntry("buildTransitive/Cora.Core.targets"));
            Assert.IsNotNull(core.GetEntry("buildTransitive/WeakenGlibcxxTask.cs"));
        }
        using (var estimators = ZipFile.OpenRead(tmp[$"Cora.Estimators.{v}.nupkg"]))
        {
            var deps = Named(Nuspec(estimators, "Cora.Estimators"), "dependency").ToDictionary(d => (string)d.Attribute("id")!, d => (string)d.Attribute("version")!);
            Assert.AreEqual(v, deps.GetValueOrDefault("Cora.Core"), "Cora.Estimators depends on Cora.Core of the same version");
            Assert.AreEqual(CentralVersion("Microsoft.ML"), deps.GetValueOrDefault("Microsoft.ML"));
        }
    }

    /// <summary>The README's ```csharp block under "From ML.NET code", as written.</summary>
    private static string ReadmeProgram()
    {
        var lines = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "README.md"));
        int section = Array.FindIndex(lines, l => l.StartsWith("## From ML.NET code", StringComparison.Ordinal));
        Assert.IsTrue(section >= 0, "README: the 'From ML.NET code' section");
        int start = Array.FindIndex(lines, section, l => l.Trim() == "```csharp") + 1;
        int end = Array.FindIndex(lines, start, l => l.Trim() == "```");
        return string.Join('\n', lines[start..end]) + "\n";
    }

    /// <summary>The global packages folder's copies of this version of Cora's packages (a rerun must restore the fresh ones).</summary>
    internal static void ForgetCachedPackages(string v)
    {
        string root = TestPaths.NuGetPackages;
        foreach (var id in Packed)
        {
            var dir = Path.Combine(root, id.ToLowerInvariant(), v);
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static void AssertTheProgramRan(int code, string output, string work)
    {
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "Cora: training the MF stage");
        StringAssert.Contains(output, "Cora step 1/");
        var auc = output.Split('\n').Single(l => l.StartsWith("AUC ", StringComparison.Ordinal));
        Assert.IsFalse(auc.Contains("NaN"), $"every metric is defined on the README's rows: {auc}");
        var reloaded = output.Split('\n').Single(l => l.StartsWith("reloaded AUC ", StringComparison.Ordinal));
        Assert.AreEqual(auc.Split(' ')[1], reloaded.Split(' ')[2], "the model loaded by a plain Model.Load in a fresh context scores as the trained one");
        for (int rank = 1; rank <= 5; rank++) Assert.IsTrue(output.Split('\n').Any(l => l.StartsWith($"{rank}. ", StringComparison.Ordinal)), $"recommendation {rank}:\n{output}");
        Assert.IsFalse(output.Contains("Channel ", StringComparison.Ordinal), $"no ML.NET channel chatter passes the README's log filter:\n{output}");
        Assert.IsTrue(File.Exists(Path.Combine(work, "model.zip")));
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(1_200_000)]
    public void TheReadmeProgramRunsAsWrittenFromThePackagesAsAFileBasedAppAndAsAConsoleProject()
    {
        using var tmp = TestPaths.Temp();                       // outside the repository: nothing of the source tree applies
        string feed = tmp["feed"], v = Version;
        Pack(feed);
        File.WriteAllText(tmp["NuGet.config"], $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="cora-local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        // The README's relative paths (../shared/...) resolve from a working folder beside a link to the shared folder.
        Directory.CreateSymbolicLink(tmp["shared"], TestPaths.SharedOrStandIn);
        string work = Directory.CreateDirectory(tmp["work"]).FullName;
        var env = new Dictionary<string, string> { ["DOTNET_NOLOGO"] = "1", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
        string program = ReadmeProgram();
        StringAssert.StartsWith(program, $"#:package Cora.Estimators@{v}\n", "the README names the version this tree packs");

        ForgetCachedPackages(v);
        try
        {
            // 1. As a file-based app, exactly as the README says to run it.
            File.WriteAllText(Path.Combine(work, "app.cs"), program);
            var (code, output) = TestProcess.Run("dotnet", "run -c Release app.cs", 900, work, env);
            AssertTheProgramRan(code, output, work);

            // 2. As a console project that references the package (the two directives left out).
            File.Delete(Path.Combine(work, "model.zip"));
            string project = Directory.CreateDirectory(tmp["console"]).FullName;
            WriteConsoleProject(Path.Combine(project, "app.csproj"), $"<PackageReference Include=\"Cora.Estimators\" Version=\"{v}\" />");
            File.WriteAllText(Path.Combine(project, "Program.cs"), string.Join('\n', program.Split('\n').Where(l => !l.StartsWith("#:", StringComparison.Ordinal))));
            string bin = Path.Combine(project, "out");
            (code, output) = TestProcess.Run("dotnet", $"build \"{project}\" -c Release -o \"{bin}\" -v n -tl:off", 600, project, env);
            Assert.AreEqual(0, code, output);
            Assert.IsTrue(File.Exists(Path.Combine(bin, "runtimes", "linux-x64", "native", "libtorch_cpu.so")) || File.Exists(Path.Combine(bin, "libtorch_cpu.so")),
                "the CPU libtorch arrives with the package");
            if (!HostLibstdcxxHas("GLIBCXX_3.4.32"))
                StringAssert.Contains(output, "Cora: marked GLIBCXX_3.4.32 weak", "the package's buildTransitive fix ran in the consumer's build");
            (code, output) = TestProcess.Run("dotnet", $"\"{Path.Combine(bin, "app.dll")}\"", 900, work, env);
            AssertTheProgramRan(code, output, work);

            // 3. Another libtorch (docs/packages.md): the CPU natives excluded from the build, CORA_LIBTORCH naming a folder
            //    that holds one (here the copy the previous build brought).
            string byo = Directory.CreateDirectory(tmp["byo"]).FullName;
            WriteConsoleProject(Path.Combine(byo, "byo.csproj"), $"<PackageReference Include=\"Cora.Estimators\" Version=\"{v}\" />",
                $"<PackageReference Include=\"libtorch-cpu-linux-x64\" Version=\"{CentralVersion("libtorch-cpu-linux-x64")}\" ExcludeAssets=\"all\" />");
            File.WriteAllText(Path.Combine(byo, "Program.cs"),
                "Console.WriteLine(\"device \" + Microsoft.ML.Cora.Runtime.CoraDevice.Resolve(\"cpu\").type + \" from \" + Microsoft.ML.Cora.Runtime.LibTorchRuntime.LoadedFrom());\n");
            string byoBin = Path.Combine(byo, "out");
            (code, output) = TestProcess.Run("dotnet", $"build \"{byo}\" -c Release -o \"{byoBin}\"", 600, byo, env);
            Assert.AreEqual(0, code, output);
            Assert.AreEqual(0, Directory.GetFiles(byoBin, "libtorch*.so", SearchOption.AllDirectories).Length, "ExcludeAssets keeps the CPU natives out");
            (code, output) = TestProcess.Run("dotnet", $"\"{Path.Combine(byoBin, "byo.dll")}\"", 300, byo, new Dictionary<string, string>(env) { ["CORA_LIBTORCH"] = "" });
            Assert.AreNotEqual(0, code, output);
            StringAssert.Contains(output, "No libtorch: none beside the app");
            string natives = Path.Combine(bin, "runtimes", "linux-x64", "native");
            (code, output) = TestProcess.Run("dotnet", $"\"{Path.Combine(byoBin, "byo.dll")}\"", 300, byo, new Dictionary<string, string>(env) { ["CORA_LIBTORCH"] = natives });
            Assert.AreEqual(0, code, output);
            StringAssert.Contains(output, "device CPU from " + natives);
        }
        finally { ForgetCachedPackages(v); }
    }

    /// <summary>A console project of its own (outside the repository) with these package references.</summary>
    private static void WriteConsoleProject(string path, params string[] references) => File.WriteAllText(path, $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>enable</Nullable>
          </PropertyGroup>
          <ItemGroup>
            {string.Join("\n    ", references)}
          </ItemGroup>
        </Project>
        """);

    private static bool HostLibstdcxxHas(string version)
    {
        foreach (var path in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6" })
            if (File.Exists(path)) return File.ReadAllBytes(path).AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(version + "\0")) >= 0;
        return true;   // unknown layout: nothing to assert about the fix
    }
}
