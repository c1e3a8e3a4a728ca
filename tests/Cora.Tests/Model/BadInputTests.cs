using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Training;
using Microsoft.ML.Cora.IO;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;

namespace Cora.Tests;

[TestClass]
public class BadInputTests
{
    private const string Header = "uid\tiid\tlabel\ttimestamp\tnot_cold\this\n";

    private static string Error(string content, Encoding? enc = null)
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["f.tsv"], content, enc ?? new UTF8Encoding(false));
        return Assert.ThrowsExactly<InvalidDataException>(() => InteractionTsv.Read(tmp["f.tsv"])).Message;
    }

    [TestMethod]
    public void InteractionFileErrorsNameFileLineAndColumn()
    {
        StringAssert.Contains(Assert.ThrowsExactly<FileNotFoundException>(() => InteractionTsv.Read("/nonexistent/x.tsv")).Message, "Interactions file not found: '/nonexistent/x.tsv'");
        StringAssert.Contains(Error(""), "the file is empty");
        StringAssert.Contains(Error(Header), "no data rows");
        StringAssert.Contains(Error("uid,iid,label\n1,2,1\n"), "must be tab-separated");
        StringAssert.Contains(Error("uid\titem\tlabel\n1\t2\t1\n"), "missing column 'iid'");
        StringAssert.Contains(Error(Header + "1\tx\t1\t5\t1\t0\n"), "line 2, column 'iid': 'x' is not a non-negative integer id");
        StringAssert.Contains(Error(Header + "1\t2\t2\t5\t1\t0\n"), "line 2, column 'label': '2' is not 0 or 1");
        StringAssert.Contains(Error(Header + "1\t2\t1\t5\t1\t0 a\n"), "column 'his': 'a' is not an item id");
        StringAssert.Contains(Error(Header + "1\t2\t1\n"), "line 2 has 3 fields");
        StringAssert.Contains(Error("uid\tiid\tlabel\n1\t2\t1\n\u00e9\t2\t1\n", Encoding.Latin1), "not valid UTF-8 text");
    }

    [TestMethod]
    public void DuplicateRowsAreKeptOnceAndPaddingDropped()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["f.tsv"], Header + "1\t2\t1\t5\t1\t0 3 4\n1\t2\t1\t5\t1\t0 3 4\n1\t2\t0\t6\t1\t0\n");
        var rows = InteractionTsv.Read(tmp["f.tsv"]);
        Assert.AreEqual(2, rows.Count, "the exact duplicate (same user, item, time) is dropped");
        CollectionAssert.AreEqual(new[] { 3, 4 }, rows[0].History);
    }

    [TestMethod]
    public void ItemFileTitlesWithDelimitersAndErrors()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["items.tsv"], "iid\ttitle\n1\tSeven, \"Se7en\" (1995)\n2\tA\tB\n");
        var items = ItemCatalog.Read(tmp["items.tsv"]);
        Assert.AreEqual("Seven, \"Se7en\" (1995)", items.Title(1));
        Assert.AreEqual("A B", items.Title(2), "everything after the first tab is the title; a further tab becomes a space (one text policy)");
        var missing = Assert.ThrowsExactly<KeyNotFoundException>(() => items.Title(3)).Message;
        StringAssert.Contains(missing, "item(s) 3 have no title");
        StringAssert.Contains(missing, "Options.TitleColumnName");
        StringAssert.Contains(missing, "CoraTransformer.AddItems");
        // Latin-1 bytes are refused like the interactions reader refuses them (no silent U+FFFD).
        File.WriteAllBytes(tmp["latin1.tsv"], new byte[] { (byte)'i', (byte)'i', (byte)'d', 9, (byte)'t', (byte)'i', (byte)'t', (byte)'l', (byte)'e', 10, (byte)'1', 9, (byte)'C', 0xE9, (byte)'l', (byte)'i', (byte)'e', 10 });
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ItemCatalog.Read(tmp["latin1.tsv"])).Message, "not valid UTF-8");
        // A title with line breaks and tabs given through the library is cleaned once, so what is written loads back equal.
        var written = new ItemCatalog(new Dictionary<int, string> { [7] = "Line one\r\nline\ttwo\u2028end ", [8] = "plain" });
        Assert.AreEqual("Line one line two end", written.Title(7));
        written.Write(tmp["out.tsv"]);
        var back = ItemCatalog.Read(tmp["out.tsv"]);
        CollectionAssert.AreEquivalent(written.Titles.ToList(), back.Titles.ToList(), "no phantom item, titles equal");
        File.WriteAllText(tmp["bad.tsv"], "id,name\n1,x\n");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ItemCatalog.Read(tmp["bad.tsv"])).Message, "expected the header 'iid<TAB>title'");
        File.WriteAllText(tmp["dup.tsv"], "iid\ttitle\n1\ta\n1\tb\n");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ItemCatalog.Read(tmp["dup.tsv"])).Message, "item 1 appears twice");
    }

    [TestMethod]
    public void HistoryIdsWithoutTitlesAreSkippedInPrompts()
    {
        using var m = Slice.Model(CoraMethod.Cora);
        var row = new Interaction(7, 1, true, 0, true, new[] { 2, 999999, 3 });
        string text = m.Llm!.Tokenizer.Decode(m.Tokenize(row).Ids);
        StringAssert.Contains(text, $"\"{Slice.Items.Title(2)}\", \"{Slice.Items.Title(3)}\"");
        Assert.IsFalse(text.Contains("999999"));
    }

    [TestMethod]
    public void ColdRowsUseZeroEmbeddingsAndScore()
    {
        using var m = Slice.Model(CoraMethod.Cora);
        var cold = new Interaction(999999, 1, true, 0, false, Array.Empty<int>());
        var s = m.Score(new[] { cold });
        Assert.IsTrue(float.IsFinite(s[0]));
        Assert.IsFalse(m.Cf.KnowsUser(999999));
    }

    [TestMethod]
    public void ModelZipFaults()
    {
        using var tmp = TestPaths.Temp();
        // A private copy of the LLM so that it can be changed after training.
        string llmPath = Slice.CopyLlm(tmp.Path);
        string weights = File.Exists(llmPath) ? llmPath : Path.Combine(llmPath, "model.safetensors");
        using (var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), LanguageModel.Load(llmPath), Slice.SmallMf(), Slice.Items))
            m.Save(tmp["m.zip"]);
        using (CoraModel.Load(tmp["m.zip"])) { }

        // Newer format version.
        File.Copy(tmp["m.zip"], tmp["new.zip"]);
        using (var z = ZipFile.Open(tmp["new.zip"], ZipArchiveMode.Update))
        {
            var e = z.GetEntry("manifest.json")!;
            JsonNode json;
            using (var r = new StreamReader(e.Open())) json = JsonNode.Parse(r.ReadToEnd())!;
            json["FormatVersion"] = 99;
            e.Delete();
            using var w = new StreamWriter(z.CreateEntry("manifest.json").Open());
            w.Write(json.ToJsonString());
        }
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(tmp["new.zip"])).Message, "saved by a newer Cora (model format 99");

        // Path traversal.
        File.Copy(tmp["m.zip"], tmp["evil.zip"]);
        using (var z = ZipFile.Open(tmp["evil.zip"], ZipArchiveMode.Update))
            using (var w = new StreamWriter(z.CreateEntry("../../escape.txt").Open())) w.Write("x");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(tmp["evil.zip"])).Message, "path traversal");

        // Missing entry, truncated file, not a zip.
        File.Copy(tmp["m.zip"], tmp["missing.zip"]);
        using (var z = ZipFile.Open(tmp["missing.zip"], ZipArchiveMode.Update)) z.GetEntry("cf.safetensors")!.Delete();
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(tmp["missing.zip"])).Message, "the entry 'cf.safetensors' is missing");
        var bytes = File.ReadAllBytes(tmp["m.zip"]);
        File.WriteAllBytes(tmp["cut.zip"], bytes[..(bytes.Length / 2)]);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(tmp["cut.zip"])).Message, "not a Cora model");

        // The LLM changed since training (checksum), then moved.
        var llm = File.ReadAllBytes(weights);
        llm[^1] ^= 0x55;
        File.WriteAllBytes(weights, llm);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => CoraModel.Load(tmp["m.zip"])).Message, "is not the one this model was trained with");
        if (File.Exists(llmPath)) File.Delete(llmPath); else Directory.Delete(llmPath, true);
        StringAssert.Contains(Assert.ThrowsExactly<FileNotFoundException>(() => CoraModel.Load(tmp["m.zip"])).Message, "is not at");
    }

    [TestMethod]
    public void EmbeddedLlmTravelsInsideTheZip()
    {
        using var tmp = TestPaths.Temp();
        string llmPath = Slice.CopyLlm(tmp.Path);
        float[] before;
        var rows = Slice.Valid.Take(4).ToList();
        using (var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), LanguageModel.Load(llmPath), Slice.SmallMf(), Slice.Items))
        {
            before = m.Score(rows);
            m.Save(tmp["m.zip"], embedLlm: true);
        }
        if (File.Exists(llmPath)) File.Delete(llmPath); else Directory.Delete(llmPath, true);
        using var loaded = CoraModel.Load(tmp["m.zip"]);
        CollectionAssert.AreEqual(before, loaded.Score(rows));
    }

    [TestMethod]
    public void FailedSaveLeavesTheOldFileIntact()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["model.zip"], "old model");
        Assert.ThrowsExactly<IOException>(() => AtomicFile.Write(tmp["model.zip"], s => { s.Write(new byte[100]); throw new IOException("disk full (simulated)"); }));
        Assert.AreEqual("old model", File.ReadAllText(tmp["model.zip"]));
        Assert.AreEqual(1, Directory.GetFiles(tmp.Path).Length, "no temporary file left behind");
    }

    /// <summary>Where scoring runs as one stream on the calling thread (the timed choice of streams said 1), the caller's own libtorch
    /// thread count (a thread-pool thread may carry another caller's) must not change a bit of the scores, and is left as it was.</summary>
    [TestMethod]
    public void OneStreamScoresDoNotDependOnTheCallersThreadCount()
    {
        try
        {
            CpuChoices.Override = s => s == CpuChoices.ScoringStreamsSwitch ? "1" : null;
            using var m = Slice.Model(CoraMethod.Cora);
            var rows = Slice.Valid.Take(24).ToList();
            var serial = m.Score(rows, 8);
            foreach (int threads in new[] { 1, 2, 3 })
            {
                float[]? got = null; int after = 0;
                var t = new Thread(() => { torch.set_num_threads(threads); got = m.Score(rows, 8); after = torch.get_num_threads(); });
                t.Start(); t.Join();
                CollectionAssert.AreEqual(serial, got, $"scored on a thread set to {threads} libtorch threads");
                Assert.AreEqual(threads, after, "the caller's thread count is restored");
            }
        }
        finally
        {
            CpuChoices.Override = null;
            var reset = new Thread(Microsoft.ML.Cora.Runtime.CoraDevice.RestoreThreads);   // a count set on a thread is the next threads' default
            reset.Start(); reset.Join();
        }
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    public void EightThreadsScoreLikeSerialWithAFlatWorkingSet()
    {
        using var m = Slice.Model(CoraMethod.Cora);
        var rows = Slice.Valid.Take(24).ToList();
        var serial = m.Score(rows, 8);
        long Managed() { GC.Collect(); GC.WaitForPendingFinalizers(); return GC.GetTotalMemory(true); }
        long start = 0;
        for (int round = 0; round < 3; round++)
        {
            var results = new float[8][];
            Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t => results[t] = m.Score(rows, 8));
            foreach (var r in results) CollectionAssert.AreEqual(serial, r);
            if (round == 0) start = Managed();
        }
        long growth = Managed() - start;
        Assert.IsTrue(growth < 20 * 1024 * 1024, $"managed memory grew by {growth / 1024} KiB over two rounds of 8-thread scoring");
    }
}

/// <summary>Validation rows of one label cannot select a model (AUC is undefined): refused before any training, by every trainer.</summary>
[TestClass]
public class OneLabelValidationTests
{
    [TestMethod]
    public void EveryTrainerRefusesValidationRowsOfOneLabelBeforeTraining()
    {
        var train = Slice.Train.Take(400).ToList();
        foreach (bool label in new[] { true, false })
        {
            var oneLabel = Slice.Valid.Where(r => r.Label == label).Take(60).ToList();
            foreach (var kind in new[] { CollaborativeKind.Mf, CollaborativeKind.LightGcn, CollaborativeKind.SasRec })
            {
                var log = new List<string>();
                var e = Assert.ThrowsExactly<InvalidDataException>(() => CollaborativeModels.Train(kind, train, oneLabel, new MatrixFactorizationOptions { EmbeddingDim = 8, MaxEpochs = 2 }, log.Add));
                StringAssert.Contains(e.Message, $"all 60 rows have label {(label ? 1 : 0)}");
                StringAssert.Contains(e.Message, "needs rows of both labels");
                Assert.AreEqual(0, log.Count, $"{kind}: no epoch ran");
            }
            using var m = Slice.Model(CoraMethod.Cora);
            var before = m.Trainable.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
            var err = Assert.ThrowsExactly<InvalidDataException>(() => TrainingLoop.Train(m, train, oneLabel, new TrainingOptions { BatchSize = 8, MaxSteps = 2 }));
            StringAssert.Contains(err.Message, "validation data: all 60 rows");
            Assert.IsTrue(m.Trainable.state_dict().All(kv => kv.Value.eq(before[kv.Key]).all().item<bool>()), "nothing trained");
        }
        // Both labels in the data, but the rows actually scored at each validation (a seeded half, capped) hold one: named with the cap.
        var mixed = Slice.Valid.Where(r => r.Label).Take(40).Append(Slice.Valid.First(r => !r.Label)).ToList();
        using var model = Slice.Model(CoraMethod.Cora);
        var capped = Assert.ThrowsExactly<InvalidDataException>(() => TrainingLoop.Train(model, train, mixed, new TrainingOptions { BatchSize = 8, MaxSteps = 2, MaxValidationRows = 3 }));
        StringAssert.Contains(capped.Message, "--max-valid-rows");
        // Two rows, one of each label: the seeded half holds one row, so every validation scores both, and says so.
        var pair = new[] { Slice.Valid.First(r => r.Label), Slice.Valid.First(r => !r.Label) };
        var said = new List<string>();
        using var small = Slice.Model(CoraMethod.Cora);
        var result = TrainingLoop.Train(small, train, pair, new TrainingOptions { BatchSize = 8, MaxSteps = 1 }, null, said.Add);
        StringAssert.Contains(string.Join("\n", said), "the seeded half of the 2 validation rows holds one label; every validation scores all 2 rows");
        Assert.IsTrue(double.IsFinite(result.BestValidationAuc), "a finite AUC selected the model");
    }

    [TestMethod]
    public void TheCliRefusesAOneLabelValidationFileInOneLine()
    {
        using var tmp = TestPaths.Temp();
        InteractionTsv.Write(tmp["train.tsv"], Slice.Train.Take(400));
        InteractionTsv.Write(tmp["valid.tsv"], Slice.Valid.Where(r => r.Label).Take(50));
        var (code, _, err) = CliTests.Cli("train", "--train", tmp["train.tsv"], "--valid", tmp["valid.tsv"], "--items", Slice.ItemsPath, "--method", "mf", "--out", tmp["m.zip"], "--mf-dim", "8");
        Assert.AreNotEqual(0, code);
        Assert.AreEqual(1, err.Trim().Split('\n').Length, err);
        StringAssert.Contains(err, $"--valid {tmp["valid.tsv"]}: all 50 rows have label 1");
        Assert.IsFalse(File.Exists(tmp["m.zip"]), "no model written");
    }
}

/// <summary>Rows are never dropped or read differently without a word.</summary>
[TestClass]
public class RowsReadAsWrittenTests
{
    [TestMethod]
    public void AColumnNamedTwiceIsRefused()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["a.tsv"], "uid\tiid\tlabel\ttimestamp\tlabel\n1\t2\t1\t5\t0\n");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => InteractionTsv.Read(tmp["a.tsv"]));
        StringAssert.Contains(e.Message, "the header names column 'label' 2 times (columns 3, 5)");
    }

    [TestMethod]
    public void RepeatsAreReportedAndContradictionsRefused()
    {
        using var tmp = TestPaths.Temp();
        File.WriteAllText(tmp["same.tsv"], "uid\tiid\tlabel\ttimestamp\n1\t2\t1\t5\n1\t2\t1\t5\n1\t2\t0\t6\n3\t4\t0\t5\n");
        var notices = new List<string>();
        var rows = InteractionTsv.Read(tmp["same.tsv"], notice: notices.Add);
        Assert.AreEqual(3, rows.Count, "the repeat is read once; the same pair at another time is another event");
        Assert.AreEqual(1, notices.Count);
        StringAssert.Contains(notices[0], "1 row(s) repeat an earlier row (same user, item, time and label) and were read once; 3 rows read");
        File.WriteAllText(tmp["clash.tsv"], "uid\tiid\tlabel\ttimestamp\n1\t2\t1\t5\n3\t4\t0\t5\n1\t2\t0\t5\n");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => InteractionTsv.Read(tmp["clash.tsv"]));
        StringAssert.Contains(e.Message, "lines 2 and 4 give user 1, item 2 at time 5 labels 1 and 0");
    }

    [TestMethod]
    public void CfFromWithOptionsForTrainingACfStageIsAUsageErrorBeforeAnyWork()
    {
        using var tmp = TestPaths.Temp();
        Directory.CreateDirectory(tmp["ck"]);
        File.WriteAllText(tmp["ck/state.json"], "{}");
        File.WriteAllText(tmp["m.zip"], "not read");
        var (code, _, err) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--llm", Slice.LlmPath,
            "--cf", "sasrec", "--mf-dim", "32", "--cf-from", tmp["m.zip"], "--out", tmp["out.zip"], "--checkpoint-dir", tmp["ck"], "--restart");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "--cf, --mf-dim: --cf-from uses the CF stage saved in that model");
        Assert.IsTrue(File.Exists(tmp["ck/state.json"]), "--restart deleted nothing: the check ran first");
        var (ok, _, _) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--llm", Slice.LlmPath,
            "--cf", "mf", "--cf-from", tmp["m.zip"], "--out", tmp["out.zip"]);
        Assert.AreEqual(2, ok, "an explicit --cf is refused even when it matches the default");
    }
}

/// <summary>Outputs are compared with inputs as files (links resolved, device and inode), for every command that writes.</summary>
[TestClass]
public class OutputsAreFilesNotPathsTests
{
    [TestMethod]
    public void AnOutputReachingAnInputThroughALinkOrAHardLinkIsRefusedBeforeAnyWork()
    {
        using var tmp = TestPaths.Temp();
        string data = Directory.CreateDirectory(tmp["data"]).FullName;
        InteractionTsv.Write(Path.Combine(data, "train.tsv"), Slice.Train.Take(200));
        InteractionTsv.Write(Path.Combine(data, "valid.tsv"), Slice.Valid.Where(r => r.Label).Take(20).Concat(Slice.Valid.Where(r => !r.Label).Take(20)));
        Directory.CreateSymbolicLink(tmp["via"], data);
        byte[] before = File.ReadAllBytes(Path.Combine(data, "train.tsv"));
        // --out through a symlinked folder names the training file.
        var (code, _, err) = CliTests.Cli("train", "--train", Path.Combine(data, "train.tsv"), "--valid", Path.Combine(data, "valid.tsv"), "--items", Slice.ItemsPath,
            "--method", "mf", "--out", Path.Combine(tmp["via"], "train.tsv"), "--mf-dim", "4");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "is also an input");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(Path.Combine(data, "train.tsv")), "the training file is intact");
        // --json as a hard link of the validation file.
        using (var ln = System.Diagnostics.Process.Start("ln", new[] { Path.Combine(data, "valid.tsv"), tmp["hard.json"] })) ln.WaitForExit();
        var (code2, _, err2) = CliTests.Cli("train", "--train", Path.Combine(data, "train.tsv"), "--valid", Path.Combine(data, "valid.tsv"), "--items", Slice.ItemsPath,
            "--method", "mf", "--out", tmp["m.zip"], "--json", tmp["hard.json"], "--mf-dim", "4");
        Assert.AreEqual(2, code2, err2);
        StringAssert.Contains(err2, "--json: ");
        Assert.IsFalse(File.Exists(tmp["m.zip"]), "nothing trained or written");
        Assert.AreEqual(FileChecks.Identity(Path.Combine(data, "valid.tsv")), FileChecks.Identity(tmp["hard.json"]));
        Assert.AreEqual(FileChecks.Canonical(Path.Combine(data, "train.tsv")), FileChecks.Canonical(Path.Combine(tmp["via"], "train.tsv")));
    }

    [TestMethod]
    public void DataWritesNeitherOverItsInputsNorOverSpecialFiles()
    {
        using var tmp = TestPaths.Temp();
        string dir = Directory.CreateDirectory(tmp["ml"]).FullName;
        // The ratings file is named like an output of the recipe, in the output folder.
        File.WriteAllText(Path.Combine(dir, "train.tsv"), "1::10::5::978300760\n");
        File.WriteAllText(Path.Combine(dir, "movies.dat"), "10::Heat (1995)::Action\n");
        byte[] before = File.ReadAllBytes(Path.Combine(dir, "train.tsv"));
        var (code, _, err) = CliTests.Cli("data", "movielens-1m", "--ratings", Path.Combine(dir, "train.tsv"), "--movies", Path.Combine(dir, "movies.dat"), "--out", dir);
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "is also an input");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(Path.Combine(dir, "train.tsv")));

        // A FIFO where an output goes: never replaced, by the check or by the atomic writer itself.
        using (var mk = System.Diagnostics.Process.Start("mkfifo", tmp["fifo.json"])) mk.WaitForExit();
        var (code2, _, err2) = CliTests.Cli("bench", "forward", "--shape", "tiny", "--repeats", "1", "--json", tmp["fifo.json"]);
        Assert.AreEqual(2, code2, err2);
        StringAssert.Contains(err2, "is a fifo, not a regular file; refusing to replace it");
        var e = Assert.ThrowsExactly<IOException>(() => AtomicFile.Write(tmp["fifo.json"], s => s.WriteByte(1)));
        StringAssert.Contains(e.Message, "refusing to replace it");
        Assert.AreEqual(FileChecks.Kind.Fifo, FileChecks.KindOf(tmp["fifo.json"]));
    }
}

/// <summary>Every check runs before any work or deletion.</summary>
[TestClass]
public class ChecksBeforeWorkTests
{
    [TestMethod]
    public void BadInputsCheckpointFoldersAndLongOutputsAreRefusedBeforeRestartDeletesAnything()
    {
        using var tmp = TestPaths.Temp();
        string ck = Directory.CreateDirectory(tmp["ck"]).FullName;
        File.WriteAllText(Path.Combine(ck, "state.json"), "{}");
        string[] Args(params string[] extra) => new[] { "train", "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--llm", Slice.LlmPath, "--out", tmp["m.zip"] }.Concat(extra).ToArray();

        var (code, _, err) = CliTests.Cli(Args("--checkpoint-dir", ck, "--restart", "--train", tmp["trian.tsv"]));   // mistyped
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, $"--train: '{tmp["trian.tsv"]}' does not exist");
        Assert.IsTrue(File.Exists(Path.Combine(ck, "state.json")), "--restart deleted nothing");

        var (code2, _, err2) = CliTests.Cli(Args("--train", Slice.TrainPath, "--checkpoint-dir", "/proc/cora-checkpoints"));
        Assert.AreEqual(2, code2, err2);
        StringAssert.Contains(err2, "--checkpoint-dir: '/proc' is not writable");

        var (code3, _, err3) = CliTests.Cli(Args("--train", Slice.TrainPath, "--json", tmp[new string('j', 5000) + ".json"]));
        Assert.AreEqual(2, code3, err3);
        StringAssert.Contains(err3, "--json: ");
        StringAssert.Contains(err3, "is too long");
        Assert.AreEqual(1, err3.Trim().Split('\n').Length, "one line");
        Assert.IsTrue(err3.Length < 600, "the long value is elided");

        var (code4, _, err4) = CliTests.Cli(new[] { "train", "--train", Slice.TrainPath, "--valid", Slice.ValidPath, "--items", Slice.ItemsPath, "--llm", "/dev/null", "--out", tmp["m.zip"] });
        Assert.AreEqual(2, code4, err4);
        StringAssert.Contains(err4, "--llm: '/dev/null' is neither a llama2.c .bin file nor a Hugging Face folder");
        Assert.IsFalse(File.Exists(tmp["m.zip"]));
    }
}
