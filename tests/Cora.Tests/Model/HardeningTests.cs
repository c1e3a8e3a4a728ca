using Microsoft.ML;
using Microsoft.ML.Cora.Estimators;
using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json.Nodes;
using Cora.Cli;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Training;
using TorchSharp;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Tests;

/// <summary>Untrusted model files and careless arguments: nothing overwritten, nothing hung, no NaN passed off as a result.</summary>
[TestClass]
public class HardeningTests
{
    private static (int code, string stdout, string stderr) Cli(params string[] args) => CliTests.Cli(args);

    /// <summary>A small CoRA model on the synthetic fixture, saved with a private copy of its LLM folder.</summary>
    private static (TempDir dir, string model, string llm) SavedModel(bool embed = false)
    {
        var dir = TestPaths.Temp();
        string llm = Synthetic.CopyLlmFolder(dir["llm"]);
        using var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), LanguageModel.Load(llm), Synthetic.SmallMf(), Synthetic.Items);
        m.Save(dir["m.zip"], embed);
        return (dir, dir["m.zip"], llm);
    }

    internal static void EditManifest(string zip, Action<JsonNode> edit)
    {
        using var z = ZipFile.Open(zip, ZipArchiveMode.Update);
        var e = z.GetEntry("manifest.json")!;
        JsonNode json;
        using (var r = new StreamReader(e.Open())) json = JsonNode.Parse(r.ReadToEnd())!;
        edit(json);
        e.Delete();
        using var w = new StreamWriter(z.CreateEntry("manifest.json").Open());
        w.Write(json.ToJsonString());
    }

    private static int LeftoverTempFolders() => Directory.GetDirectories(ScratchSpace.Root, "*-load-*").Length;

    [TestMethod]
    [Timeout(120_000)]
    public void CraftedModelsAreRefusedBeforeTheyCostAnything()
    {
        var (dir, model, llm) = SavedModel();
        using var _ = dir;
        int temps = LeftoverTempFolders();
        string Copy(string n) { File.Copy(model, dir[n]); return dir[n]; }

        // An LLM path naming a device or a FIFO: refused at once (no hash of an endless stream).
        foreach (var special in new[] { "/dev/zero", "/dev/urandom" })
        {
            var z = Copy(Path.GetFileName(special) + ".zip");
            EditManifest(z, j => j["LlmPath"] = special);
            var sw = Stopwatch.StartNew();
            var e = Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(z));
            StringAssert.Contains(e.Message, "is a device, not a regular file");
            Assert.IsTrue(sw.Elapsed.TotalSeconds < 10);
        }
        // A FIFO (a reader would block for ever) is refused the same way.
        string fifo = dir["llm.fifo"];
        using (var mk = Process.Start("mkfifo", fifo)) mk.WaitForExit();
        var fz = Copy("fifo.zip");
        EditManifest(fz, j => j["LlmPath"] = fifo);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(fz)).Message, "is a fifo, not a regular file");
        // CORA_LLM_ROOTS limits where a model may point (an explicit llmPath is the user's own choice).
        Environment.SetEnvironmentVariable("CORA_LLM_ROOTS", dir["elsewhere"]);
        try { StringAssert.Contains(Assert.ThrowsExactly<UnauthorizedAccessException>(() => CoraModel.Load(model)).Message, "outside CORA_LLM_ROOTS"); }
        finally { Environment.SetEnvironmentVariable("CORA_LLM_ROOTS", null); }
        // Options only the manifest carries are bounded before any allocation.
        var big = Copy("big.zip");
        EditManifest(big, j => j["Options"]!["QueryGenerator"]!["NumLayers"] = 60);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(big)).Message, "Options.QueryGenerator.NumLayers: 60 is out of range");
        // Options that are in range but do not match the stored tensors: named, before the model is built.
        var other = Copy("other.zip");
        EditManifest(other, j => j["Options"]!["QueryGenerator"]!["Hidden"] = 64);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(other)).Message, "the options need");
        // A changed tokenizer is a changed LLM; the message names no hash.
        var tokFile = Directory.GetFiles(llm, "tokenizer*").Single();
        var tokBytes = File.ReadAllBytes(tokFile);
        File.WriteAllBytes(tokFile, tokBytes.Concat(new byte[] { 0 }).ToArray());
        var changed = Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(model)).Message;
        StringAssert.Contains(changed, "(weights or tokenizer) is not the one this model was trained with");
        Assert.IsFalse(changed.Contains("SHA-256") || changed.Contains(LlmFiles.Checksum(LlmFiles.Of(llm))[..12]), "no hash of the file in the message");
        File.WriteAllBytes(tokFile, tokBytes);
        using (CoraModel.Load(model)) { }
        // Embedded-LLM models without their files.
        var noLlm = Copy("nollm.zip");
        EditManifest(noLlm, j => j["LlmEmbedded"] = true);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(noLlm)).Message, "holds no llm/ entries");
        // A zip bomb: 64 MiB of zeros in 64 KiB is refused before anything is written.
        var bomb = Copy("bomb.zip");
        using (var z = ZipFile.Open(bomb, ZipArchiveMode.Update))
        {
            z.GetEntry("cf.safetensors")!.Delete();
            using var s = z.CreateEntry("cf.safetensors", CompressionLevel.Optimal).Open();
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 64; i++) s.Write(zeros);
        }
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(bomb)).Message, "more than 200:1");
        Assert.AreEqual(temps, LeftoverTempFolders(), "no temporary folder left behind");
    }

    [TestMethod]
    public void MalformedSafetensorsHeadersNeverReachLibtorch()
    {
        using var dir = TestPaths.Temp();
        string Write(string header, int dataBytes)
        {
            var h = System.Text.Encoding.UTF8.GetBytes(header);
            var path = dir[Guid.NewGuid().ToString("N") + ".safetensors"];
            File.WriteAllBytes(path, BitConverter.GetBytes((ulong)h.Length).Concat(h).Concat(new byte[dataBytes]).ToArray());
            return path;
        }
        void Bad(string header, int data, string expect) =>
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SafetensorsFile.Open(Write(header, data))).Message, expect);
        Bad("""{"a":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}}""", 16, "negative dimension");
        Bad("""{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}""", 4, "rank 9");
        Bad("""{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}""", 16, "too large");
        Bad("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "overlap");
        Bad("""{"a":{"dtype":"F32","shape":["x"],"data_offsets":[0,4]}}""", 4, "malformed header value");
        Bad("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""", 8, "data_offsets has 1 values");
        Bad("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "truncated");
    }

    [TestMethod]
    [Timeout(600_000)]
    public void RandomlyCorruptedModelsAndDataFailClearlyOrLoadCorrectly()
    {
        var (dir, model, _) = SavedModel();
        using var _d = dir;
        var original = File.ReadAllBytes(model);
        var rows = Synthetic.Valid.Take(8).ToList();
        float[] expected;
        using (var m = CoraModel.Load(model)) expected = m.Score(rows);
        var rng = new Random(11);
        int temps = LeftoverTempFolders(), loaded = 0, refused = 0;
        long managedBefore = GC.GetTotalMemory(true);
        for (int i = 0; i < 40; i++)
        {
            var bytes = (byte[])original.Clone();
            switch (i % 4)
            {
                case 0: for (int k = 0; k < 1 + rng.Next(8); k++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8)); break;     // bit flips
                case 1: bytes = bytes[..rng.Next(bytes.Length)]; break;                                                                  // truncation
                case 2: // an oversized declared size in the zip's central directory (uncompressed size field of an entry)
                    int cd = FindLast(bytes, new byte[] { 0x50, 0x4B, 0x01, 0x02 });
                    if (cd > 0) BitConverter.GetBytes(uint.MaxValue - (uint)rng.Next(1000)).CopyTo(bytes, cd + 24);
                    break;
                default: bytes[rng.Next(bytes.Length / 2, bytes.Length)] ^= 0xFF; break;
            }
            string path = dir[$"c{i}.zip"];
            File.WriteAllBytes(path, bytes);
            var task = Task.Run(() =>
            {
                try { using var m = CoraModel.Load(path); CollectionAssert.AreEqual(expected, m.Score(rows), $"case {i} loaded: scores must be the original ones"); return true; }
                catch (Exception e) when (e is InvalidDataException or FileNotFoundException or NotSupportedException or EndOfStreamException)
                {
                    Assert.IsFalse(e.Message.Contains(" at ") && e.Message.Contains("c10::"), $"case {i}: native frames in '{e.Message}'");
                    return false;
                }
            });
            Assert.IsTrue(task.Wait(TimeSpan.FromSeconds(60)), $"case {i} hung");
            if (task.Result) loaded++; else refused++;
        }
        Assert.AreEqual(40, loaded + refused);
        Assert.IsTrue(refused >= 30, $"most corruptions are detected ({refused} refused, {loaded} loaded unchanged)");
        Assert.AreEqual(temps, LeftoverTempFolders(), "no temporary folders left");
        Assert.IsTrue(GC.GetTotalMemory(true) - managedBefore < 64L << 20, "memory bounded");

        // Data files: random corruption gives a clear error naming the file, or rows.
        var tsv = File.ReadAllBytes(Synthetic.Paths.Valid);
        for (int i = 0; i < 40; i++)
        {
            var b = (byte[])tsv.Clone();
            if (i % 2 == 0) for (int k = 0; k < 4; k++) b[rng.Next(b.Length)] = (byte)rng.Next(256); else b = b[..rng.Next(b.Length)];
            string p = dir[$"d{i}.tsv"];
            File.WriteAllBytes(p, b);
            try { InteractionTsv.Read(p); }
            catch (InvalidDataException e) { StringAssert.Contains(e.Message, p); }
        }
    }

    private static int FindLast(byte[] a, byte[] pattern)
    {
        for (int i = a.Length - pattern.Length; i >= 0; i--)
            if (a.AsSpan(i, pattern.Length).SequenceEqual(pattern)) return i;
        return -1;
    }

    [TestMethod]
    public void NonFiniteValuesStopTrainingAndMetrics()
    {
        using var m = Synthetic.Model(CoraMethod.Cora);
        using (torch.no_grad()) ((CollaborativeLoraParts)m.Trainable).collaborative_weights.p.values().First().weight!.fill_(float.NaN);
        var e = Assert.ThrowsExactly<TrainingDivergedException>(() => TrainingLoop.Train(m, Synthetic.Train.Take(64).ToList(), Synthetic.Valid.Take(32).ToList(),
            new TrainingOptions { BatchSize = 8, MaxSteps = 3, ValidateEvery = 100 }));
        StringAssert.Contains(e.Message, "step 1");
        StringAssert.Contains(e.Message, "not finite");
        var nanScores = new[] { 0.1f, float.NaN, 0.3f };
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => Metrics.Auc(nanScores, new[] { true, false, true })).Message, "Score 1 is NaN");
        Assert.ThrowsExactly<InvalidDataException>(() => Metrics.LogLoss(nanScores, new[] { true, false, true }));
    }

    [TestMethod]
    public void CheckpointsOfAnotherRunAreRefusedUnlessRestarted()
    {
        using var dir = TestPaths.Temp();
        var o = new TrainingOptions { BatchSize = 8, MaxSteps = 2, ValidateEvery = 1, CheckpointDirectory = dir["ckpt"] };
        using (var m = Synthetic.Model(CoraMethod.Cora)) TrainingLoop.Train(m, Synthetic.Train.Take(80).ToList(), Synthetic.Valid.Take(40).ToList(), o);
        // Different data: refused, saying what differs.
        using (var m = Synthetic.Model(CoraMethod.Cora))
        {
            var e = Assert.ThrowsExactly<CheckpointMismatchException>(() => TrainingLoop.Train(m, Synthetic.Train.Skip(80).Take(80).ToList(), Synthetic.Valid.Take(40).ToList(), o));
            StringAssert.Contains(e.Message, "different training data");
            StringAssert.Contains(e.Message, "--restart");
        }
        // Different options (generator size): refused, not libtorch frames.
        using (var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora) with { Rank = 8 }, LanguageModel.Load(Synthetic.LlmPath), Synthetic.SmallMf(), Synthetic.Items))
            StringAssert.Contains(Assert.ThrowsExactly<CheckpointMismatchException>(() => TrainingLoop.Train(m, Synthetic.Train.Take(80).ToList(), Synthetic.Valid.Take(40).ToList(), o)).Message, "model options");
        // All-negative validation rows cannot select a model: refused before a step or a checkpoint.
        var negatives = Synthetic.Valid.Where(r => !r.Label).Take(20).ToList();
        using (var m = Synthetic.Model(CoraMethod.Cora))
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => TrainingLoop.Train(m, Synthetic.Train.Take(40).ToList(), negatives, o with { CheckpointDirectory = dir["neg"] })).Message,
                "all 20 rows have label 0");
        Assert.IsFalse(Directory.Exists(dir["neg"]) && Directory.EnumerateFiles(dir["neg"]).Any(), "no checkpoint written");
    }

    [TestMethod]
    public void OutputsNeverDestroyInputsOrSpecialFiles()
    {
        using var dir = TestPaths.Temp();
        var p = Synthetic.Paths;
        string[] Args(params string[] extra) => new[] { "train", "--train", p.Train, "--valid", p.Valid, "--items", p.Items, "--method", "mf", "--mf-epochs", "2" }.Concat(extra).ToArray();
        var trainBefore = File.ReadAllBytes(p.Train);
        var cases = new (string[] args, string expect)[]
        {
            (Args("--out", p.Train), "--out: '" + p.Train + "' is also an input"),
            (Args("--out", dir["m.zip"], "--json", dir["m.zip"]), "is also given to --out"),
            (Args("--out", "/dev/null"), "is a device, not a regular file"),
            (Args("--out", dir.Path), "is a folder"),
            (Args("--out", Path.Combine(dir.Path, "no", "such", "m.zip")), "does not exist; create it first"),
            (Args("--out", dir["m.zip"], "--lr", "nan"), "--lr: NaN is not a finite number"),
            (Args("--out", dir["m.zip"], "--validate-every", "0"), "--validate-every: 0 is out of range; it must be at least 1"),
            (Args("--out", dir["m.zip"], "--mf-dim", "0"), "--mf-dim: 0 is out of range; use 1 to 8192"),
            (Args("--out", dir["m.zip"], "--cf-token-rms", "-1"), "--cf-token-rms: -1 is out of range"),
            (Args("--out", dir["m.zip"], "--max-rows", "-1"), "--max-rows: -1 is out of range; it must be at least 0"),
            (Args("--out", dir["m.zip"], "--epochs", "0"), "--epochs: 0 is out of range; use 1 to 10000"),
            (Args("--out", dir["m.zip"], "--checkpoint-dir", p.Train), "--checkpoint-dir: '" + p.Train + "' is a file"),
        };
        foreach (var (args, expect) in cases)
        {
            var (code, _, err) = Cli(args);
            Assert.AreEqual(2, code, string.Join(' ', args) + "\n" + err);
            StringAssert.Contains(err, expect);
        }
        CollectionAssert.AreEqual(trainBefore, File.ReadAllBytes(p.Train), "the training data is untouched");
        Assert.IsTrue(File.Exists("/dev/null") && new FileInfo("/dev/null").Length == 0);
        Assert.IsFalse(File.Exists(dir["m.zip"]), "nothing was trained or written");
        // Error lines stay short whatever the offending value.
        var (c2, _, e2) = Cli("evaluate", "--model", new string('x', 100_000), "--data", "d");
        Assert.AreEqual(CoraCli.BadInput, c2);
        Assert.IsTrue(e2.TrimEnd().Length <= 440, $"error line of {e2.Length} characters");
        // A file that is not a zip: Cora's message, and ML.NET leaves no temporary folder.
        File.WriteAllText(dir["not.zip"], "hello");
        int mlTemps = Directory.GetDirectories(Path.GetTempPath(), "ml_dotnet*").Length;
        var (c3, _, e3) = Cli("evaluate", "--model", dir["not.zip"], "--data", p.Valid);
        Assert.AreEqual(CoraCli.BadInput, c3);
        StringAssert.Contains(e3, "not a model file");
        Assert.AreEqual(mlTemps, Directory.GetDirectories(Path.GetTempPath(), "ml_dotnet*").Length);
        // A killed save's temporary file (from a process that is gone) is removed by the next save.
        File.WriteAllText(dir[".m2.zip.999999.abcdef12.tmp"], "partial");
        AtomicFile.Write(dir["m2.zip"], s => s.WriteByte(1));
        Assert.IsFalse(File.Exists(dir[".m2.zip.999999.abcdef12.tmp"]));
    }
}

/// <summary>The LLM a model names is checked over every byte the loader reads.</summary>
[TestClass]
public class LlmFingerprintTests
{
    [TestMethod]
    public void AShardIndexPointingOutsideTheFolderIsRefused()
    {
        using var tmp = TestPaths.Temp();
        string hf = Synthetic.CopyLlmFolder(tmp["hf"]);
        File.Move(Path.Combine(hf, "model.safetensors"), tmp["outside.safetensors"]);
        var names = SafetensorsFile.Open(tmp["outside.safetensors"]).Entries.Keys;
        File.WriteAllText(Path.Combine(hf, "model.safetensors.index.json"),
            new JsonObject { ["weight_map"] = new JsonObject(names.Select(n => KeyValuePair.Create(n, (JsonNode?)JsonValue.Create("../outside.safetensors")))) }.ToJsonString());
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Microsoft.ML.Cora.Llm.LanguageModel.Load(hf));
        StringAssert.Contains(e.Message, "shard '../outside.safetensors' is not a file name inside the model folder");
        Assert.ThrowsExactly<InvalidDataException>(() => LlmFiles.Of(hf));

        // Inside the folder, every shard the index names is part of the checksum: changing one byte of it changes the checksum.
        File.Move(tmp["outside.safetensors"], Path.Combine(hf, "model-00001-of-00001.safetensors"));
        File.WriteAllText(Path.Combine(hf, "model.safetensors.index.json"),
            new JsonObject { ["weight_map"] = new JsonObject(names.Select(n => KeyValuePair.Create(n, (JsonNode?)JsonValue.Create("model-00001-of-00001.safetensors")))) }.ToJsonString());
        var files = LlmFiles.Of(hf);
        CollectionAssert.Contains(files.Select(Path.GetFileName).ToList(), "model-00001-of-00001.safetensors");
        CollectionAssert.Contains(files.Select(Path.GetFileName).ToList(), "model.safetensors.index.json");
        string before = LlmFiles.Checksum(files);
        var bytes = File.ReadAllBytes(Path.Combine(hf, "model-00001-of-00001.safetensors"));
        bytes[^1] ^= 1;
        File.WriteAllBytes(Path.Combine(hf, "model-00001-of-00001.safetensors"), bytes);
        Assert.AreNotEqual(before, LlmFiles.Checksum(LlmFiles.Of(hf)));
    }

    [TestMethod]
    public void AManifestWithoutAnLlmChecksumIsRefused()
    {
        using var tmp = TestPaths.Temp();
        string llm = Synthetic.CopyLlmFolder(tmp["llm"]);
        using (var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), Microsoft.ML.Cora.Llm.LanguageModel.Load(llm), Synthetic.SmallMf(), Synthetic.Items)) m.Save(tmp["m.zip"]);
        HardeningTests.EditManifest(tmp["m.zip"], j => j["LlmChecksum"] = null);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(tmp["m.zip"]));
        StringAssert.Contains(e.Message, "records no checksum of its LLM");
    }
}

/// <summary>Temporaries of dead writers are recognised by their free lock, not by a process id that may have been reused.</summary>
[TestClass]
public class TemporaryFileTests
{
    [TestMethod]
    public void MlNetsOwnTemporariesLiveInTheScratchFolderAndABadScratchFolderIsRefusedFirst()
    {
        // The CLI's contexts put ML.NET's model unpacking folders in this process's scratch entry (removed once it is dead).
        var ml = Cora.Cli.Cli.NewContext(1);
        StringAssert.StartsWith(ml.TempFilePath, Path.GetFullPath(ScratchSpace.Root));
        Assert.IsTrue(Directory.Exists(ml.TempFilePath));
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["file"], "x");
        try
        {
            foreach (var bad in new[] { tmp["file"], Path.Combine(tmp["file"], "sub") })
            {
                Environment.SetEnvironmentVariable(ScratchSpace.Variable, bad);
                var (code, _, err) = CliTests.Cli("evaluate", "--model", tmp["none.zip"], "--data", tmp["none.tsv"]);
                Assert.AreEqual(2, code, err);
                StringAssert.StartsWith(err, "error: CORA_TMPDIR: ");
            }
            Environment.SetEnvironmentVariable(ScratchSpace.Variable, tmp["file"]);
            Assert.AreEqual(0, CliTests.Cli("evaluate", "--help").code, "help needs no scratch folder");
        }
        finally { Environment.SetEnvironmentVariable(ScratchSpace.Variable, null); }
    }

    [TestMethod]
    public void AnAtomicWriteRemovesTemporariesNobodyHoldsAndKeepsHeldOnes()
    {
        using var tmp = TestPaths.Temp();
        // A temporary named after PID 1 (alive in every container) but held by nobody: a dead writer's, removed.
        File.WriteAllText(tmp[".out.json.1.deadbeef.tmp"], "partial");
        using var held = new FileStream(tmp[".out.json.99999.cafecafe.tmp"], FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        AtomicFile.Write(tmp["out.json"], s => s.WriteByte((byte)'1'));
        Assert.IsFalse(File.Exists(tmp[".out.json.1.deadbeef.tmp"]), "the dead writer's temporary is gone");
        Assert.IsTrue(File.Exists(tmp[".out.json.99999.cafecafe.tmp"]), "a temporary still held by its writer stays");
        Assert.AreEqual("1", File.ReadAllText(tmp["out.json"]));
        Assert.AreEqual(2, Directory.GetFiles(tmp.Path).Length, "no temporary of this write is left");
    }

    [TestMethod]
    public void ScratchEntriesLiveInOneFolderNamedAfterTheirOwner()
    {
        string best = ScratchSpace.NewFile("best", ".safetensors");
        Assert.AreEqual(ScratchSpace.Root, Path.GetDirectoryName(best));
        Assert.IsTrue(Path.GetFileName(best).Contains("-best-"));
        string owner = Path.GetFileName(best).Split('-')[0];
        Assert.IsTrue(File.Exists(Path.Combine(ScratchSpace.Root, $".owner-{owner}.lock")), "this process's lock file");
        File.WriteAllText(best, "x");
        ScratchSpace.RemoveDead(ScratchSpace.Root, "another-process");
        // A dead owner's entries and the temporaries of its unfinished atomic writes are removed.
        string dead = "deadowner000";
        File.WriteAllText(Path.Combine(ScratchSpace.Root, $".owner-{dead}.lock"), "");
        File.WriteAllText(Path.Combine(ScratchSpace.Root, $"{dead}-best-1.safetensors"), "x");
        File.WriteAllText(Path.Combine(ScratchSpace.Root, $".{dead}-best-2.safetensors.77.abcd1234.tmp"), "partial");
        Directory.CreateDirectory(Path.Combine(ScratchSpace.Root, $"{dead}-load-3"));
        Assert.AreEqual(3, ScratchSpace.RemoveDead(ScratchSpace.Root, owner));
        Assert.IsFalse(Directory.EnumerateFileSystemEntries(ScratchSpace.Root, $"*{dead}*").Any(), "nothing of the dead owner is left");
        Assert.IsTrue(File.Exists(best), "a living owner's entries survive another process's clean-up");
        File.Delete(best);
        using var snapshot = new Microsoft.ML.Cora.Runtime.BestSnapshot();
        Assert.AreEqual(ScratchSpace.Root, Path.GetDirectoryName(snapshot.FilePath), "the best snapshot is a scratch entry");
    }
}

/// <summary>Small files cannot make Cora allocate or unpack large amounts: sizes are checked against the bytes present first.</summary>
[TestClass]
public class BoundedCostTests
{
    [TestMethod]
    public void AConfigNeedingMoreBytesThanTheWeightsHoldIsRefusedBeforeAllocation()
    {
        using var tmp = TestPaths.Temp();
        string hf = Synthetic.CopyLlmFolder(tmp["hf"]);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "config.json")))!.AsObject();
        cfg["hidden_size"] = 8192; cfg["intermediate_size"] = 22016; cfg["num_attention_heads"] = 64; cfg["num_key_value_heads"] = 64; cfg["vocab_size"] = 100_000;
        File.WriteAllText(Path.Combine(hf, "config.json"), cfg.ToJsonString());
        var e = Assert.ThrowsExactly<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(hf));
        StringAssert.Contains(e.Message, "config.json: describes");
        StringAssert.Contains(e.Message, "the config does not belong to these weights");
        // The count is the model's own: a config and its weights agree.
        using var real = CheckpointLoader.LoadHuggingFace(Synthetic.LlmPath);
        Assert.AreEqual(real.parameters().Sum(p => p.numel()), CheckpointLoader.ParameterCount(real.Config));
    }

    [TestMethod]
    public void CfTablesWiderThanTheFileHoldsAreRefusedBeforeTheModelIsBuilt()
    {
        // MF: 10,000 user ids and a one-row table declaring width 50,000 would allocate 2 GB for the user table.
        var mf = new Dictionary<string, TorchSharp.torch.Tensor>
        {
            ["user_ids"] = TorchSharp.torch.arange(10_000L), ["item_ids"] = TorchSharp.torch.arange(3L),
            ["user_embedding.weight"] = TorchSharp.torch.zeros(1, 50_000), ["item_embedding.weight"] = TorchSharp.torch.zeros(4, 50_000),
        };
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CollaborativeModels.Import("mf", k => mf[k])).Message, "do not match the id lists");
        // SASRec: a wide item table and 16 blocks whose weights the file does not hold (they would need 16 x 6 x 4096^2 floats).
        var sas = new Dictionary<string, TorchSharp.torch.Tensor>
        {
            ["user_ids"] = TorchSharp.torch.arange(3L), ["item_ids"] = TorchSharp.torch.arange(3L), ["config"] = TorchSharp.torch.tensor(new long[] { 16, 1, 50 }),
            ["item_embedding.weight"] = TorchSharp.torch.zeros(4, 4096), ["position_embedding.weight"] = TorchSharp.torch.zeros(50, 4096),
            ["blocks.0.query.weight"] = TorchSharp.torch.zeros(4, 4),
        };
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CollaborativeModels.Import("sasrec", k => sas[k])).Message, "'blocks.0.query.weight' is [4,4], expected [4096,4096]");
    }

    private static void ZipOfZeros(string path, int entries, int bytesEach)
    {
        using var z = ZipFile.Open(path, ZipArchiveMode.Create);
        var zeros = new byte[bytesEach];
        for (int i = 0; i < entries; i++)
        {
            using var s = z.CreateEntry($"e{i}.bin", CompressionLevel.Optimal).Open();
            s.Write(zeros);
        }
    }

    [TestMethod]
    public void ManySmallEntriesAndTheOuterZipAreRatioCheckedInAll()
    {
        using var tmp = TestPaths.Temp();
        ZipOfZeros(tmp["many.zip"], 3, 15 << 20);      // each under the per-entry check's 16 MiB, 45 MiB in all
        var e = Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(tmp["many.zip"]));
        StringAssert.Contains(e.Message, "its 3 entries would expand");
        Assert.AreEqual(0, Directory.GetDirectories(ScratchSpace.Root, "*-load-*").Count(d => Directory.EnumerateFileSystemEntries(d).Any()), "nothing unpacked");
        var outer = Assert.ThrowsExactly<InvalidDataException>(() => new Microsoft.ML.MLContext().Model.LoadCora(tmp["many.zip"], out _));
        StringAssert.Contains(outer.Message, "would expand");
    }
}

/// <summary>A model moved to a machine where its LLM lives elsewhere: one flag (or CORA_LLM) and the stored SHA-256.</summary>
[TestClass]
public class MovedModelTests
{
    [TestMethod]
    public void AMovedLlmIsFoundWithLlmAndCheckedAgainstTheRecordedHash()
    {
        using var dir = TestPaths.Temp();
        string llm = Synthetic.CopyLlmFolder(dir["llm"]);
        var rows = Synthetic.Train.Where(r => Synthetic.Items.Contains(r.ItemId)).Take(6).ToList();
        var ml = new MLContext(1);
        float[] before;
        using (var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), LanguageModel.Load(llm), Synthetic.SmallMf(), Synthetic.Items))
        using (var t = CoraTransformer.Create(ml, m))
        {
            before = m.Score(rows.Select(r => r with { History = r.History }).ToList());
            ml.Model.Save(t, ml.Data.LoadFromEnumerable(CoraInput.From(rows)).Schema, dir["m.zip"]);
        }
        Directory.Move(llm, dir["moved"]);

        // Cora's own message, not ML.NET's reflection wrapper, and it names the way out.
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => new MLContext(1).Model.LoadCora(dir["m.zip"], out _));
        StringAssert.Contains(e.Message, "--llm");
        using (var t = CoraTransformer.Find(new MLContext(1).Model.LoadCora(dir["m.zip"], out _, llmPath: dir["moved"])))
            CollectionAssert.AreEqual(before, t.Model.Score(rows));

        // Another LLM under the new path is refused by the hash.
        string other = Synthetic.CopyLlmFolder(dir["other"]);
        var weights = Directory.GetFiles(other, "*.safetensors").Single();
        var bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 0x55;
        File.WriteAllBytes(weights, bytes);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => new MLContext(1).Model.LoadCora(dir["m.zip"], out _, llmPath: other)).Message,
            "is not the one this model was trained with");

        // The CLI: --llm on every command that loads a model, CORA_LLM as its default.
        var pair = $"{rows[0].ItemId}";
        var (code, _, err) = CliTests.Cli("predict", "--model", dir["m.zip"], "--user", $"{rows[0].UserId}", "--items", pair);
        Assert.AreEqual(CoraCli.BadInput, code, "a missing LLM is bad input: retrying cannot help (the Job fails the index at once)");
        StringAssert.Contains(err, "--llm");
        (code, var stdout, err) = CliTests.Cli("predict", "--model", dir["m.zip"], "--user", $"{rows[0].UserId}", "--items", pair, "--llm", dir["moved"]);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, pair);
        (code, _, err) = CliTests.Cli("predict", "--model", dir["m.zip"], "--user", $"{rows[0].UserId}", "--items", pair, "--llm", dir["nowhere"]);
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--llm: ");
        try
        {
            Environment.SetEnvironmentVariable("CORA_LLM", dir["moved"]);
            (code, _, err) = CliTests.Cli("predict", "--model", dir["m.zip"], "--user", $"{rows[0].UserId}", "--items", pair);
            Assert.AreEqual(0, code, err);
            Environment.SetEnvironmentVariable("CORA_LLM", dir["nowhere"]);
            (code, _, err) = CliTests.Cli("predict", "--model", dir["m.zip"], "--user", $"{rows[0].UserId}", "--items", pair);
            Assert.AreEqual(2, code);
            StringAssert.Contains(err, "(from $CORA_LLM)");
        }
        finally { Environment.SetEnvironmentVariable("CORA_LLM", null); }
        foreach (var command in new[] { "score", "serve", "evaluate", "predict", "recommend", "inspect" })
        {
            var (_, help, _) = CliTests.Cli(command, "--help");
            StringAssert.Contains(help, "--llm", command);
            StringAssert.Contains(help, "CORA_LLM", command);
        }
    }
}

/// <summary>The two model files (a bare Cora model, an ML.NET model around one): each loader names the other when given the wrong one.</summary>
[TestClass]
public class ModelFormatTests
{
    [TestMethod]
    public void EachLoaderNamesTheWayToTheOtherFormat()
    {
        using var dir = TestPaths.Temp();
        var rows = Synthetic.Train.Where(r => Synthetic.Items.Contains(r.ItemId)).Take(4).ToList();
        var ml = new MLContext(1);
        float[] before;
        using (var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), LanguageModel.Load(Synthetic.LlmPath), Synthetic.SmallMf(), Synthetic.Items))
        using (var t = CoraTransformer.Create(ml, m))
        {
            before = m.Score(rows);
            m.Save(dir["bare.zip"]);
            ml.Model.Save(t, ml.Data.LoadFromEnumerable(CoraInput.From(rows)).Schema, dir["mlnet.zip"]);
        }

        var e = Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(dir["mlnet.zip"]));
        StringAssert.Contains(e.Message, dir["mlnet.zip"]);
        StringAssert.Contains(e.Message, "an ML.NET model");
        StringAssert.Contains(e.Message, "mlContext.Model.LoadCora");
        // The way it names works, and gives the same scores as the bare model.
        using (var t = CoraTransformer.Find(ml.Model.LoadCora(dir["mlnet.zip"], out _)))
            CollectionAssert.AreEqual(before, t.Model.Score(rows));
        using (var bare = CoraModel.Load(dir["bare.zip"]))
            CollectionAssert.AreEqual(before, bare.Score(rows));

        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => ml.Model.LoadCora(dir["bare.zip"], out _));
        StringAssert.Contains(e2.Message, dir["bare.zip"]);
        StringAssert.Contains(e2.Message, "a bare Cora model");
        StringAssert.Contains(e2.Message, "CoraModel.Load");
        // The CLI reads both: the same scores from either file.
        string[] Predict(string model) => ["predict", "--model", model, "--user", $"{rows[0].UserId}", "--items", string.Join(',', rows.Select(r => r.ItemId).Distinct())];
        var (code, fromBare, err) = CliTests.Cli(Predict(dir["bare.zip"]));
        Assert.AreEqual(0, code, err);
        var (code2, fromMlNet, err2) = CliTests.Cli(Predict(dir["mlnet.zip"]));
        Assert.AreEqual(0, code2, err2);
        StringAssert.Contains(fromBare, $"{rows[0].ItemId}");
        Assert.AreEqual(fromMlNet, fromBare);
    }
}
