using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Runtime;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora.Llm;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

[TestClass]
public class LlmBadInputTests
{
    private static (TempDir dir, LlamaForCausalLM model) SavedModel()
    {
        var tmp = TestPaths.Temp();
        var m = LlamaForCausalLM.CreateRandom(LlmModelTests.SmallGqa(), 1);
        CheckpointLoader.SaveHuggingFace(m, tmp.Path);
        return (tmp, m);
    }

    private static void Rewrite(string dir, Func<List<KeyValuePair<string, Tensor>>, List<KeyValuePair<string, Tensor>>> edit)
    {
        var f = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        var list = f.Entries.Keys.Select(k => KeyValuePair.Create(k, f.Read(k))).ToList();
        SafetensorsFile.Write(Path.Combine(dir, "model.safetensors"), edit(list));
    }

    private static T Throws<T>(Action a) where T : Exception => Assert.ThrowsExactly<T>(a);

    [TestMethod]
    public void MissingTensorIsNamed()
    {
        var (tmp, _) = SavedModel();
        using var __ = tmp;
        Rewrite(tmp.Path, l => l.Where(kv => kv.Key != "model.layers.1.mlp.up_proj.weight").ToList());
        var e = Throws<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path));
        StringAssert.Contains(e.Message, "missing tensor(s) 'model.layers.1.mlp.up_proj.weight'");
        StringAssert.Contains(e.Message, tmp.Path);
    }

    [TestMethod]
    public void ExtraTensorIsNamedWithItsFile()
    {
        var (tmp, _) = SavedModel();
        using var __ = tmp;
        Rewrite(tmp.Path, l => l.Append(KeyValuePair.Create("model.layers.9.self_attn.q_proj.weight", torch.zeros(2, 2))).ToList());
        var e = Throws<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path));
        StringAssert.Contains(e.Message, "unexpected tensor(s) 'model.layers.9.self_attn.q_proj.weight'");
        StringAssert.Contains(e.Message, "model.safetensors");
    }

    [TestMethod]
    public void MisshapenTensorIsNamedWithBothShapes()
    {
        var (tmp, _) = SavedModel();
        using var __ = tmp;
        Rewrite(tmp.Path, l => l.Select(kv => kv.Key == "model.norm.weight" ? KeyValuePair.Create(kv.Key, torch.ones(31)) : kv).ToList());
        var e = Throws<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path));
        StringAssert.Contains(e.Message, "tensor 'model.norm.weight' has shape [31], the config needs [32]");
    }

    [TestMethod]
    public void TruncatedSafetensorsNamesTheTensor()
    {
        var (tmp, _) = SavedModel();
        using var __ = tmp;
        var path = tmp["model.safetensors"];
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        var e = Throws<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path));
        StringAssert.Contains(e.Message, "truncated: tensor '");
        StringAssert.Contains(e.Message, path);
        File.WriteAllBytes(path, bytes[..5]);
        StringAssert.Contains(Throws<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path)).Message, "truncated safetensors file");
    }

    [TestMethod]
    public void TruncatedLlama2cNamesTheTensor()
    {
        using var tmp = TestPaths.Temp();
        var bytes = File.ReadAllBytes(Slice.Llama2cPath);
        long embedEnd, upEnd;
        using (var m = CheckpointLoader.LoadLlama2c(Slice.Llama2cPath))
        {
            var c = m.Config;
            embedEnd = 28 + c.VocabSize * (long)c.HiddenSize * 4;
            // after up_proj: the final norm [dim], two rotary tables [seq_len, head_dim / 2], the head when untied
            upEnd = bytes.Length - 4L * c.HiddenSize - 4L * c.MaxPositionEmbeddings * c.HeadDim - (c.TieWordEmbeddings ? 0 : 4L * c.VocabSize * c.HiddenSize);
        }
        File.WriteAllBytes(tmp["cut.bin"], bytes[..(int)(embedEnd - 1)]);
        var e = Throws<InvalidDataException>(() => CheckpointLoader.LoadLlama2c(tmp["cut.bin"]));
        StringAssert.Contains(e.Message, "truncated: tensor 'model.embed_tokens.weight'");
        File.WriteAllBytes(tmp["cut2.bin"], bytes[..(int)(upEnd - 4)]);
        StringAssert.Contains(Throws<InvalidDataException>(() => CheckpointLoader.LoadLlama2c(tmp["cut2.bin"])).Message, "truncated: tensor 'model.layers.*.mlp.up_proj.weight'");
        File.WriteAllBytes(tmp["junk.bin"], new byte[10]);
        StringAssert.Contains(Throws<InvalidDataException>(() => CheckpointLoader.LoadLlama2c(tmp["junk.bin"])).Message, "truncated");
    }

    [TestMethod]
    public void MissingTokenizerIsReported()
    {
        var (tmp, _) = SavedModel();
        using var __ = tmp;
        var e = Throws<FileNotFoundException>(() => LanguageModel.Load(tmp.Path));
        StringAssert.Contains(e.Message, "No tokenizer in");
        StringAssert.Contains(e.Message, "tokenizer.model");
        File.Copy(Slice.Llama2cPath, tmp["alone.bin"]);
        StringAssert.Contains(Throws<FileNotFoundException>(() => LanguageModel.Load(tmp["alone.bin"])).Message, "No tokenizer beside");
    }

    [TestMethod]
    public void UnsupportedModelTypeListsSupported()
    {
        var (tmp, _) = SavedModel();
        using var __ = tmp;
        var cfg = JsonNode.Parse(File.ReadAllText(tmp["config.json"]))!.AsObject();
        cfg["model_type"] = "gpt2";
        File.WriteAllText(tmp["config.json"], cfg.ToJsonString());
        var e = Throws<NotSupportedException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path));
        StringAssert.Contains(e.Message, "model_type 'gpt2' is not supported");
        StringAssert.Contains(e.Message, "llama, mistral, qwen2");
    }

    [TestMethod]
    public void MissingConfigOrWeightsAndPickleRefused()
    {
        using var tmp = TestPaths.Temp();
        StringAssert.Contains(Throws<FileNotFoundException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path)).Message, "config.json");
        File.WriteAllText(tmp["config.json"], LlmModelTests.SmallGqa().ToJson());
        StringAssert.Contains(Throws<FileNotFoundException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path)).Message, "expected model.safetensors");
        File.WriteAllBytes(tmp["pytorch_model.bin"], new byte[] { 0x80, 0x02 });
        var e = Throws<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path));
        StringAssert.Contains(e.Message, "pickled PyTorch checkpoints can execute code");
        StringAssert.Contains(e.Message, "allowPickle");
        StringAssert.Contains(Throws<FileNotFoundException>(() => LanguageModel.Load(tmp["nowhere"])).Message, "LLM not found");
    }

    [TestMethod]
    public void BadConfigFieldIsNamed()
    {
        var (tmp, _) = SavedModel();
        using var __ = tmp;
        var cfg = JsonNode.Parse(File.ReadAllText(tmp["config.json"]))!.AsObject();
        cfg["num_key_value_heads"] = 3;
        File.WriteAllText(tmp["config.json"], cfg.ToJsonString());
        StringAssert.Contains(Throws<InvalidDataException>(() => CheckpointLoader.LoadHuggingFace(tmp.Path)).Message, "'num_key_value_heads' (3) must divide num_attention_heads (4)");
    }

    [TestMethod]
    public void CudaRequestWithoutCudaIsClear()
    {
        if (torch.cuda.is_available()) Assert.Inconclusive("CUDA is available here; this test checks the CPU-only message.");
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => CoraDevice.Resolve("cuda"));
        StringAssert.Contains(e.Message, "CUDA is not available");
        Assert.AreEqual(torch.CPU.type, CoraDevice.Resolve("auto").type);
        Assert.ThrowsExactly<ArgumentException>(() => CoraDevice.Resolve("tpu"));
    }
}
