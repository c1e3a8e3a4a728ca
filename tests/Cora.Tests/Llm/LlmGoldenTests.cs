using Microsoft.ML.Cora.Llm;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

[TestClass]
public class LlmGoldenTests
{
    private static string Ref(string name) => TestPaths.Shared("models", "stories260K", "reference", name);

    private static Tensor AllLogits(LlamaForCausalLM m, IEnumerable<int> ids)
    {
        using var _ = torch.no_grad();
        var input = torch.tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0);
        return m.Logits(input).squeeze(0);   // [T, V]
    }

    private static void AssertMatchesReference(LlamaForCausalLM m, ReferenceLogits r, string what)
    {
        var inputs = r.Rows.Select(x => x.input).ToArray();
        using var logits = AllLogits(m, inputs);
        double worst = 0;
        foreach (var (pos, _, argmax, expected) in r.Rows)
        {
            using var row = logits[pos];
            using var exp = torch.tensor(expected);
            worst = Math.Max(worst, TensorAssert.MaxAbsDiff(exp, row));
            Assert.AreEqual(argmax, (int)row.argmax().item<long>(), $"{what}: argmax at position {pos}");
        }
        Assert.IsTrue(worst <= 1e-4, $"{what}: max |logit diff| over all positions = {worst:g4} > 1e-4");
    }

    [TestMethod]
    [DataRow("logits-once-upon-a-time.txt")]
    [DataRow("logits-movie-prompt.txt")]
    public void Llama2cTokenizerAndLogitsMatchReference(string file)
    {
        var r = ReferenceLogits.Read(Ref(file));
        var tok = new Llama2cTokenizer(Path.Combine(TestPaths.StoriesDir, "tok512.bin"));
        CollectionAssert.AreEqual(r.PromptIds, tok.Encode(r.Prompt, addBos: true).ToArray(), "llama2.c tokenizer ids");
        var sp = new SentencePieceTextTokenizer(Path.Combine(TestPaths.StoriesDir, "tok512.model"));
        CollectionAssert.AreEqual(r.PromptIds, sp.Encode(r.Prompt, addBos: true).ToArray(), "SentencePiece tokenizer ids");
        using var m = CheckpointLoader.LoadLlama2c(TestPaths.Stories260K);
        AssertMatchesReference(m, r, file);
    }

    [TestMethod]
    public void GreedyContinuationMatchesReference()
    {
        var r = ReferenceLogits.Read(Ref("logits-once-upon-a-time.txt"));
        using var m = CheckpointLoader.LoadLlama2c(TestPaths.Stories260K);
        var expected = r.Rows.Where(x => x.pos >= r.PromptIds.Length - 1).Select(x => (long)x.argmax).ToArray();
        Assert.AreEqual(16, expected.Length);
        var got = m.GenerateGreedy(r.PromptIds.Select(i => (long)i).ToArray(), expected.Length);
        CollectionAssert.AreEqual(expected, got);
        var tok = new Llama2cTokenizer(Path.Combine(TestPaths.StoriesDir, "tok512.bin"));
        StringAssert.StartsWith(tok.Decode(r.PromptIds.Concat(got.Select(x => (int)x))), "Once upon a time");
    }

    [TestMethod]
    public void HuggingFaceExportOfStoriesGivesSameLogits()
    {
        using var tmp = TestPaths.Temp();
        using var bin = CheckpointLoader.LoadLlama2c(TestPaths.Stories260K);
        CheckpointLoader.SaveHuggingFace(bin, tmp.Path, Path.Combine(TestPaths.StoriesDir, "tok512.model"));
        using var lm = LanguageModel.Load(tmp.Path);
        Assert.IsInstanceOfType<SentencePieceTextTokenizer>(lm.Tokenizer);
        var r = ReferenceLogits.Read(Ref("logits-movie-prompt.txt"));
        CollectionAssert.AreEqual(r.PromptIds, lm.Tokenizer.Encode(r.Prompt, true).ToArray());
        AssertMatchesReference(lm.Model, r, "HF export");
        using var a = AllLogits(bin, r.PromptIds);
        using var b = AllLogits(lm.Model, r.PromptIds);
        Assert.AreEqual(0.0, TensorAssert.MaxAbsDiff(a, b), "same weights, same logits");
    }

    [TestMethod]
    public void LanguageModelLoadsLlama2cWithTokenizerBeside()
    {
        string bin = Slice.Llama2cPath;
        string dir = Path.GetDirectoryName(bin)!;
        using var lm = LanguageModel.Load(bin);
        using var direct = CheckpointLoader.LoadLlama2c(bin);
        Assert.AreEqual(direct.Config.HiddenSize, lm.Config.HiddenSize);
        Assert.AreEqual(direct.Config.NumKeyValueHeads, lm.Config.NumKeyValueHeads);
        Assert.IsTrue(lm.Config.TieWordEmbeddings);
        // Without ../shared the .bin is the synthetic LLaMA with only a llama2.c tokenizer beside it; stories260K also has a
        // SentencePiece model, which is preferred.
        string tokenizer = Directory.GetFiles(dir, "*.model").FirstOrDefault() ?? Directory.GetFiles(dir, "tok*.bin").Single();
        if (tokenizer.EndsWith(".model")) Assert.IsInstanceOfType<SentencePieceTextTokenizer>(lm.Tokenizer, "the SentencePiece model beside the .bin is preferred");
        else Assert.IsInstanceOfType<Llama2cTokenizer>(lm.Tokenizer);
        // The checksum covers the LLM's file set (weights, then the tokenizer it was loaded with): name, length, bytes of each.
        var expected = new List<byte>();
        foreach (var f in new[] { bin, tokenizer })
        {
            var b = File.ReadAllBytes(f);
            expected.AddRange(System.Text.Encoding.UTF8.GetBytes($"{Path.GetFileName(f)}\n{b.Length}\n"));
            expected.AddRange(b);
        }
        Assert.AreEqual(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(expected.ToArray())).ToLowerInvariant(), lm.Checksum());
    }

    [TestMethod]
    public void TheReferenceWeightsFileIsTheOneTheLogitsCameFrom() =>
        Assert.AreEqual("b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696",
            Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(TestPaths.Stories260K))).ToLowerInvariant(), "the reference weights file");

    [TestMethod]
    public void Llama2cExportLoadsToTheSameLogits()
    {
        using var tmp = TestPaths.Temp();
        var config = LlmModelTests.SmallGqa(bias: false, type: "llama") with { RmsNormEps = 1e-5 };
        using var m = LlamaForCausalLM.CreateRandom(config, 3);
        CheckpointLoader.SaveLlama2c(m, tmp["m.bin"]);
        Assert.AreEqual(28 + 4L * (2 * config.VocabSize * config.HiddenSize + config.HiddenSize + config.MaxPositionEmbeddings * config.HeadDim
            + config.NumHiddenLayers * (2L * config.HiddenSize + 2L * config.HiddenSize * config.HiddenSize + 2L * config.KvDim * config.HiddenSize
            + 3L * config.IntermediateSize * config.HiddenSize)), new FileInfo(tmp["m.bin"]).Length, "llama2.c's layout, untied head last");
        using var back = CheckpointLoader.LoadLlama2c(tmp["m.bin"]);
        var ids = new[] { 1, 5, 9, 2, 7, 3, 11 };
        using var a = AllLogits(m, ids);
        using var b = AllLogits(back, ids);
        Assert.AreEqual(0.0, TensorAssert.MaxAbsDiff(a, b), "the same weights after the rotary permutation and back");
        foreach (var other in new[] { config with { RopeTheta = 500000 }, LlmModelTests.SmallGqa(bias: true) with { RmsNormEps = 1e-5 } })
        {
            using var o = LlamaForCausalLM.CreateRandom(other, 1);
            var bad = Assert.ThrowsExactly<NotSupportedException>(() => CheckpointLoader.SaveLlama2c(o, tmp["x.bin"]));
            StringAssert.Contains(bad.Message, "save this model as a Hugging Face folder");
            Assert.IsFalse(File.Exists(tmp["x.bin"]), "nothing written");
        }
    }
}
