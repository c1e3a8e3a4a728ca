using Microsoft.ML.Cora;

namespace Cora.Tests.Architecture;

/// <summary>The model library's namespaces are layers (docs/ARCHITECTURE.md): each may use only those below it.</summary>
[TestClass]
public class LayeringTests
{
    /// <summary>Bottom first; namespaces on one line form one layer only in the sense that the later may use the earlier.</summary>
    internal static readonly string[] Layers =
    {
        "Microsoft.ML.Cora.IO",                       // files: safetensors, atomic writes, scratch space, hashing, path checks
        "Microsoft.ML.Cora.Runtime",                  // libtorch, devices, threads, measured CPU choices, option checks
        "Microsoft.ML.Cora.Data",                     // interactions, item catalog, user profiles, dataset recipes
        "Microsoft.ML.Cora.Evaluation",               // AUC, UAUC, log loss
        "Microsoft.ML.Cora.Llm.Kernels",              // fused CPU kernels (narrow-head attention, dropout)
        "Microsoft.ML.Cora.Llm",                      // the frozen LLaMA, its loaders and tokenizers
        "Microsoft.ML.Cora.Prompting",                // prompt text and tokens
        "Microsoft.ML.Cora.CollaborativeFiltering",   // MF, LightGCN, SASRec
        "Microsoft.ML.Cora.Methods",                  // CoRA, CoLLM, TALLRec-style LoRA, MF: their trainable parts and options
        "Microsoft.ML.Cora",                          // the recommender (CoraModel) and its file format
        "Microsoft.ML.Cora.Reference",                // the paper's way of computing a model's logits (tests and benchmarks)
        "Microsoft.ML.Cora.Training",                 // the training loop, the optimizer, checkpoints
    };

    /// <summary>Each use of a namespace above the user's: "user -> used: Type uses Type".</summary>
    internal static List<string> UpwardUses()
    {
        var asm = typeof(CoraModel).Assembly;
        var problems = new SortedSet<string>();
        foreach (var (type, uses) in TypeReferences.Of(asm))
        {
            int from = Array.IndexOf(Layers, type.Namespace);
            Assert.IsTrue(from >= 0 || type.Namespace is null or "Microsoft.CodeAnalysis" or "System.Runtime.CompilerServices",
                $"{type.FullName} is in namespace {type.Namespace}, which is no layer; add it to Layers and docs/ARCHITECTURE.md");
            if (from < 0) continue;
            foreach (var used in uses)
            {
                if (used.Assembly != asm) continue;
                int to = Array.IndexOf(Layers, used.Namespace);
                if (to > from) problems.Add($"{type.Namespace} -> {used.Namespace}: {type.Name} uses {used.Name}");
            }
        }
        return problems.ToList();
    }

    [TestMethod]
    public void NoNamespaceOfTheModelLibraryUsesOneAboveIt()
    {
        var problems = UpwardUses();
        Assert.AreEqual(0, problems.Count, "upward uses:\n" + string.Join("\n", problems));
    }

    [TestMethod]
    public void TheCheckSeesUsesInSignaturesFieldsAndMethodBodies()
    {
        // The reader must find what the check relies on, or the layering test could pass by seeing nothing.
        var refs = TypeReferences.Of(typeof(CoraModel).Assembly);
        var model = refs[typeof(CoraModel)];
        Assert.IsTrue(model.Contains(typeof(Microsoft.ML.Cora.Methods.MethodStrategy)), "a property type");
        Assert.IsTrue(model.Contains(typeof(Microsoft.ML.Cora.Runtime.CpuChoices)), "a static call in a method body");
        Assert.IsTrue(refs[typeof(Microsoft.ML.Cora.IO.AtomicFile)].Contains(typeof(Microsoft.ML.Cora.IO.FileChecks)), "a call in a method body");
        Assert.IsTrue(refs[typeof(Microsoft.ML.Cora.Training.TrainingLoop)].Contains(typeof(Microsoft.ML.Cora.Runtime.BestSnapshot)), "a field");
    }
}
